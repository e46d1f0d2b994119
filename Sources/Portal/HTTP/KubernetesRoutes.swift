import Foundation
import Hummingbird
import IdP
import Templates

/// The moment the product exists for: kubectl working one paste after login.
struct KubernetesRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    func register(_ router: Router<PortalContext>) {
        router.get("/kubernetes") { request, context in try await page(request, context) }
        router.post("/kubernetes/kubeconfig") { request, context in try await download(request, context) }
        router.post("/kubernetes/command") { request, context in try await command(request, context) }
        router.get("/admin/apiserver") { request, context in try await apiserverPage(request, context) }
        router.get("/downloads/{file}") { _, context in
            guard let plugin = PluginDownload.shared, let name = context.parameters.get("file") else { throw HTTPError(.notFound) }
            if name == PluginDownload.fileName {
                return Response(status: .ok, headers: [.contentType: "application/octet-stream", .cacheControl: "public, max-age=300",
                                                       .contentDisposition: "attachment; filename=\"kubectl-portal\""],
                                body: .init(byteBuffer: ByteBuffer(bytes: plugin.data)))
            }
            guard name == PluginDownload.fileName + ".sha256" else { throw HTTPError(.notFound) }
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "public, max-age=300"],
                            body: .init(byteBuffer: ByteBuffer(string: plugin.sha256 + "  kubectl-portal\n")))
        }
    }

    /// The variants of the page: built-in (tokens in the kubeconfig), the portal plugin, kubelogin.
    static func variant(_ v: String?) -> String { ["plugin", "exec"].contains(v ?? "") ? v! : "oidc" }

    func pluginAuth(_ c: ClusterSpec) -> KubeconfigEntry.Auth { .plugin(issuer: runtime.config.issuer, clientID: c.clientID) }

    /// "Tokens last 60 seconds …": the lifetimes in words, with the latest time a new login is needed.
    func lifetimeText(sessionEnd: Date, variant: String) -> String {
        let t = runtime.config.tokens
        if variant == "plugin" {
            return "kubectl holds a token that lasts \(DurationParser.words(t.idTokenTTL)); kubectl-portal renews it from its own cache and signs you in again when needed."
        }
        if variant == "exec" {
            return "kubectl holds a token that lasts \(DurationParser.words(t.idTokenTTL)); kubelogin renews it, and opens this portal in your browser when a new sign-in is needed."
        }
        return "kubectl holds a token that lasts \(DurationParser.words(t.idTokenTTL)) and renews itself while you use it. "
            + "You will need to come back here and log in again after \(DurationParser.words(t.refreshIdleTimeout)) without using kubectl, "
            + "and at the latest at \(AdminPages.date(sessionEnd)) (\(DurationParser.words(t.refreshAbsoluteLifetime)) from now)."
    }

    func entries(for identity: Identity, session: LoginSession, clusters: [ClusterSpec], variant: String, purpose: String,
                 remoteAddress: String, userAgent: String) async throws -> [KubeconfigEntry] {
        var out: [KubeconfigEntry] = []
        for c in clusters {
            if variant == "plugin" {
                out.append(KubeconfigEntry(cluster: c, userName: identity.username, auth: pluginAuth(c)))
                continue
            }
            if variant == "exec" {
                out.append(KubeconfigEntry(cluster: c, userName: identity.username,
                                           auth: .exec(issuer: runtime.config.issuer, clientID: c.clientID, issuerCAPEM: runtime.issuerCAPEM)))
                continue
            }
            // A fresh refresh family per cluster entry: entries that shared one would replay each other's tokens.
            let t = try await runtime.provider.issueForDevice(identity: identity, clientID: c.clientID, session: session,
                                                              remoteAddress: remoteAddress, purpose: purpose,
                                                              userAgent: userAgent)
            out.append(KubeconfigEntry(cluster: c, userName: identity.username,
                                       auth: .authProvider(OIDCCredentials(issuer: runtime.config.issuer, clientID: c.clientID,
                                                                           idToken: t.idToken, refreshToken: t.refreshToken,
                                                                           issuerCAPEM: runtime.issuerCAPEM))))
        }
        return out
    }

    func page(_ request: Request, _ context: PortalContext) async throws -> Response {
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fkubernetes") }
        if let refusal = unnameable(identity, context) { return refusal }
        let variant = Self.variant(request.queryParameters?["variant"])
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .kubernetes)
        let (flash, clear) = browser.takeFlash(request)
        if try await MFAGate(runtime: runtime).verdict(s, identity) == .blocked {
            var view = KubernetesView(chrome: chrome, variant: variant, lifetimeText: "", clusters: [])
            view.mfaRequired = MFAGate.blockedMessage + " " + MFAGate.blockedHint
            return Responses.html(.ok, pages.render(view), cookies: setCookie + clear)
        }
        // Nothing is minted to show this page: the plugin variant's commands hold no token, and the
        // built-in variant's command or file is made by a POST and shown once.
        let views = runtime.clusters.enumerated().map { i, c in
            let e: KubeconfigEntry? = switch variant {
            case "plugin": KubeconfigEntry(cluster: c, userName: identity.username, auth: pluginAuth(c))
            case "exec": KubeconfigEntry(cluster: c, userName: identity.username,
                                         auth: .exec(issuer: runtime.config.issuer, clientID: c.clientID, issuerCAPEM: runtime.issuerCAPEM))
            default: nil
            }
            return KubernetesView.Cluster(index: i, name: c.name, server: c.server, namespace: c.namespace,
                                          bash: e.map { Kubeconfig.command($0, shell: .bash) }, powershell: e.map { Kubeconfig.command($0, shell: .powershell) },
                                          csrf: chrome.csrf, variant: variant)
        }
        let familyEnd = runtime.clock.now() + runtime.config.tokens.refreshAbsoluteLifetime
        var view = KubernetesView(chrome: chrome, variant: variant, lifetimeText: lifetimeText(sessionEnd: familyEnd, variant: variant), clusters: views)
        view.issuer = runtime.config.issuer
        view.pluginInstall = PluginDownload.shared.map { $0.installLine(issuer: runtime.config.issuer) }
        view.notice = flash?.notice; view.error = flash?.error
        return Responses.html(.ok, pages.render(view), cookies: setCookie + clear)
    }

    /// The built-in variant's command for one cluster: a new sign-in (refresh family) for this device, shown once.
    func command(_ request: Request, _ context: PortalContext) async throws -> Response {
        let (form, s, identity): (FormParameters, LoginSession, Identity)
        switch try await posted(request, context) {
        case .refused(let page): return page
        case .ok(let f, let session, let who): (form, s, identity) = (f, session, who)
        }
        guard let cluster = runtime.clusters.first(where: { $0.name == form["cluster"] }) else {
            return Responses.html(.notFound, pages.render(ErrorView(heading: "Unknown cluster", message: "There is no cluster with that name.",
                                                                    requestID: context.requestID, backLink: "/kubernetes", backLabel: "Back to kubectl")))
        }
        let t = try await runtime.provider.issueForDevice(identity: identity, clientID: cluster.clientID, session: s,
                                                          remoteAddress: context.remoteAddress, purpose: "kubectl command",
                                                          userAgent: request.headers[.userAgent] ?? "")
        return try await Reveals(runtime: runtime, browser: browser).stash(kind: "kubectl", payload: [
            "cluster": cluster.name, "user": identity.username, "id_token": t.idToken, "refresh_token": t.refreshToken,
        ], request: request, owner: identity)
    }

    func download(_ request: Request, _ context: PortalContext) async throws -> Response {
        let (form, s, identity): (FormParameters, LoginSession, Identity)
        switch try await posted(request, context) {
        case .refused(let page): return page
        case .ok(let f, let session, let who): (form, s, identity) = (f, session, who)
        }
        let which = form["cluster"] ?? "*"
        let clusters = which == "*" ? runtime.clusters : runtime.clusters.filter { $0.name == which }
        guard !clusters.isEmpty else {
            return Responses.html(.notFound, pages.render(ErrorView(heading: "Unknown cluster", message: "There is no cluster with that name.",
                                                                    requestID: context.requestID, backLink: "/kubernetes", backLabel: "Back to Kubernetes")))
        }
        let es = try await entries(for: identity, session: s, clusters: clusters, variant: Self.variant(form["variant"]), purpose: "kubeconfig download",
                                   remoteAddress: context.remoteAddress, userAgent: request.headers[.userAgent] ?? "")
        let filename = which == "*" ? "kubeconfig" : "kubeconfig-" + String(which.unicodeScalars.map { c in
            CharacterSet.alphanumerics.contains(c) && c.isASCII || c == "-" || c == "_" || c == "." ? Character(c) : "_"
        })
        return Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "no-store",
                                               .contentDisposition: "attachment; filename=\"\(filename).yaml\""],
                        body: .init(byteBuffer: ByteBuffer(string: Kubeconfig.yaml(es))))
    }

    enum Posted { case ok(FormParameters, LoginSession, Identity), refused(Response) }

    /// A POST from the kubectl page: its form and who sent it, or the page that says why not
    /// (an expired form, no session, a person Kubernetes cannot name).
    func posted(_ request: Request, _ context: PortalContext) async throws -> Posted {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return .refused(Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the kubectl page and try again.",
                                                                              requestID: context.requestID, backLink: "/kubernetes", backLabel: "Back to kubectl"))))
        }
        guard let (s, identity) = try await session(request) else { return .refused(Responses.redirect("/login?next=%2Fkubernetes", status: .seeOther)) }
        if let refusal = unnameable(identity, context) { return .refused(refusal) }
        if try await MFAGate(runtime: runtime).verdict(s, identity) == .blocked {
            return .refused(MFAGate.refusal(pages, requestID: context.requestID))
        }
        return .ok(form, s, identity)
    }

    /// A friendly page when Kubernetes could not name this person (see `KubernetesMapping`).
    func unnameable(_ identity: Identity, _ context: PortalContext) -> Response? {
        guard case .failure(let why) = runtime.provider.kubernetes.username(identity) else { return nil }
        return Responses.html(.forbidden, pages.render(ErrorView(heading: "kubectl cannot be set up for your account", message: why.description,
                                                                 requestID: context.requestID)))
    }

    func apiserverPage(_ request: Request, _ context: PortalContext) async throws -> Response {
        guard let (_, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fadmin%2Fapiserver") }
        guard isAdmin(identity, runtime) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "Administrators only", message: "This page is for administrators.",
                                                                     requestID: context.requestID)))
        }
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: true, section: .admin)
        let setup = apiServerSetup(algorithms: runtime.keys.publishedAlgorithms())
        var view = APIServerView(chrome: chrome, flags: setup.flags,
                                 authenticationConfiguration: setup.authenticationConfiguration,
                                 usernameClaim: setup.usernameClaim, usernamePrefix: setup.usernamePrefix, groupsPrefix: setup.groupsPrefix,
                                 caPEM: runtime.issuerCAPEM, caFilePath: setup.caFilePath)
        view.webhookFlags = setup.webhookFlags
        view.audienceAdvice = setup.audienceAdvice
        view.webhookKubeconfig = setup.webhookKubeconfig
        view.webhookEnabled = runtime.webhookToken != nil
        view.optionalMFARule = setup.optionalMFARule
        return Responses.html(.ok, pages.render(view), cookies: setCookie)
    }

    func apiServerSetup(algorithms: [SigningAlgorithm]) -> APIServerSetup {
        let a = runtime.config.apiserver
        var clientIDs = Array(Set(runtime.clusters.map(\.clientID))).sorted()
        if clientIDs.isEmpty { clientIDs = ["kubernetes"] }
        // Published keys (signing and next) decide the algorithms; the configured one is always included.
        var algs = algorithms
        if !algs.contains(runtime.config.signing.algorithm) { algs.append(runtime.config.signing.algorithm) }
        var setup = APIServerSetup(issuer: runtime.config.issuer, clientIDs: clientIDs, usernameClaim: a.usernameClaim,
                                   usernamePrefix: a.usernamePrefix, groupsClaim: a.groupsClaim, groupsPrefix: a.groupsPrefix,
                                   signingAlgorithms: SigningAlgorithm.allCases.filter { algs.contains($0) }, issuerCAPEM: runtime.issuerCAPEM)
        setup.webhookAudiences = runtime.config.webhookAudiences
        setup.mfaRequirement = runtime.config.mfa.require
        setup.mfaGroups = runtime.config.mfa.groups.sorted()
        return setup
    }
}
