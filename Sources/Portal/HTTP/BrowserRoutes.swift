import Foundation
import Hummingbird
import IdP
import Templates

/// The pages a person walks through: authorize → login → back to the client; setup; home.
struct BrowserRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    var provider: Provider { runtime.provider }

    func register(_ router: Router<PortalContext>) {
        router.get("/authorize") { request, context in
            guard let p = request.queryParameters else { return badRequestPage(context, "The sign-in link is malformed.") }
            return try await authorize(p, request, context)
        }
        router.post("/authorize") { request, context in
            var request = request
            guard let p = try? await request.form(limit: runtime.config.maxBodyBytes) else {
                return badRequestPage(context, "The sign-in request is malformed.")
            }
            return try await authorize(p, request, context)
        }
        router.get("/login") { request, context in try await loginPage(request, context) }
        router.post("/login") { request, context in try await loginSubmit(request, context) }
        router.get("/setup") { request, context in try await setupPage(request, context) }
        router.post("/setup") { request, context in try await setupSubmit(request, context) }
        router.get("/") { request, context in try await home(request, context) }
        registerFactorSteps(router)
    }

    // MARK: Pages

    func errorPage(_ status: HTTPResponse.Status, _ context: PortalContext, heading: String, message: String, hint: String? = nil,
                   backLink: String? = "/", backLabel: String = "Back to the start page", cookies: [String] = []) -> Response {
        Responses.html(status, pages.render(ErrorView(heading: heading, message: message, hint: hint, requestID: context.requestID,
                                                      backLink: backLink, backLabel: backLabel)), cookies: cookies)
    }

    func badRequestPage(_ context: PortalContext, _ message: String) -> Response {
        errorPage(.badRequest, context, heading: "Bad request", message: message)
    }

    func currentSession(_ request: Request) async throws -> (LoginSession, Identity)? {
        guard let c = request.cookie(browser.sessionCookieName) else { return nil }
        return try await runtime.login.session(cookie: c)
    }

    // MARK: /authorize (RFC 6749 §4.1.1)

    func authorize(_ p: FormParameters, _ request: Request, _ context: PortalContext) async throws -> Response {
        switch try await provider.checkAuthorization(p) {
        case .showError(let e):
            return errorPage(.badRequest, context, heading: "This sign-in link is not valid",
                             message: "The application that sent you here is not set up correctly: \(e.errorDescription)",
                             hint: "Tell the owner of that application. Nothing was sent back to it.", backLink: nil)
        case .redirectError(let e, let uri, let state):
            return Responses.redirect(provider.errorRedirect(e, redirectURI: uri, state: state))
        case .valid(let req):
            let current = try await currentSession(request)
            if provider.sessionSatisfies(req, session: current?.0), let (session, identity) = current {
                if try await MFAGate(runtime: runtime).verdict(session, identity) == .blocked { return mfaRequiredPage(context) }
                let location = try await provider.issueCode(for: req, session: session, remoteAddress: context.remoteAddress)
                return Responses.redirect(location)
            }
            if req.prompt.contains("none") {
                return Responses.redirect(provider.errorRedirect(.loginRequired("the user is not signed in"), redirectURI: req.redirectURI, state: req.state))
            }
            let (bid, setCookie) = browser.browserID(request)
            let now = runtime.clock.now()
            let pending = PendingAuthorization(id: runtime.random.token(byteCount: 18), browserHash: Secrets.sha256Hex(bid), request: req,
                                               createdAt: now, expiresAt: now + runtime.config.tokens.pendingAuthorizationTTL)
            try await runtime.storage.createPendingAuthorization(pending)
            return Responses.redirect("/login?req=\(pending.id)", cookies: setCookie.map { [$0] } ?? [])
        }
    }

    /// The pending authorization named by `req`, if it belongs to this browser and is still alive.
    func pending(_ id: String?, _ request: Request) async throws -> PendingAuthorization?? {
        guard let id, !id.isEmpty else { return .some(nil) }
        guard id.utf8.count <= 64, let p = try await runtime.storage.pendingAuthorization(id: id), p.expiresAt > runtime.clock.now(),
              let bid = request.cookie(browser.browserCookieName),
              Secrets.constantTimeEqual(Secrets.sha256Hex(bid), p.browserHash)
        else { return nil }
        return .some(p)
    }

    func expiredSignIn(_ context: PortalContext) -> Response {
        errorPage(.badRequest, context, heading: "This sign-in has expired",
                  message: "The sign-in request is unknown, expired, or was started in another browser.",
                  hint: "Go back to the application and start again.", backLink: nil)
    }

    // MARK: /login

    func loginPage(_ request: Request, _ context: PortalContext) async throws -> Response {
        let q = request.queryParameters ?? FormParameters()
        guard let pendingResult = try await pending(q["req"], request) else { return expiredSignIn(context) }
        // Kerberos configured: 401 Negotiate with this same form in the body (KerberosRoutes.swift).
        if let kerberos = runtime.kerberos { return try await negotiateLogin(kerberos, pending: pendingResult, request, context) }
        let (bid, setCookie) = browser.browserID(request)
        var clientName: String?
        if let p = pendingResult { clientName = try await runtime.provider.clients.client(id: p.request.clientID)?.name }
        var view = LoginView(csrf: browser.csrfToken(browserID: bid), pending: pendingResult?.id, clientName: clientName,
                             next: Self.safeNext(q["next"]))
        var cookies = setCookie.map { [$0] } ?? []
        let (flash, clear) = browser.takeFlash(request)
        view.notice = flash?.notice; cookies += clear
        let noAdministrator = (try? await runtime.storage.adminExists()) == false
        view.setupPending = noAdministrator && runtime.config.adminGroups.isEmpty
        // A session cookie that no longer names a live session (idle or absolute expiry, sign-out elsewhere,
        // revoked by an admin): say why the person is here, and drop the cookie when its session is gone.
        // An idled-out session stays named by the cookie until the next sign-in takes over what it started.
        // (A directory or database that cannot be asked right now proves nothing: no notice then.)
        if let old = request.cookie(browser.sessionCookieName), !old.isEmpty {
            do {
                let stored = try await runtime.login.storedSession(cookie: old)
                var alive = false
                if let stored { alive = try await runtime.login.current(stored) != nil }
                if !alive {
                    view.notice = "Your session has ended. Sign in again to continue."
                    if stored == nil { cookies.append(browser.clearSessionCookie()) }
                }
            } catch {}
        }
        return Responses.html(.ok, pages.render(view), cookies: cookies)
    }

    func loginSubmit(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        let form: FormParameters
        do { form = try await request.form(limit: runtime.config.maxBodyBytes) } catch {
            return errorPage(error == .tooLarge ? .contentTooLarge : .badRequest, context, heading: "Bad request",
                             message: "The sign-in form could not be read.", backLink: "/login", backLabel: "Back to sign in")
        }
        guard browser.csrfValid(request, form: form), let bid = request.cookie(browser.browserCookieName) else {
            return errorPage(.forbidden, context, heading: "This form has expired",
                             message: "For your safety the form can only be sent from the page that showed it, in the same browser.",
                             hint: "Reload the sign-in page and try again.", backLink: "/login", backLabel: "Back to sign in")
        }
        guard let pendingResult = try await pending(form["req"], request) else { return expiredSignIn(context) }
        let username = form["username"] ?? ""
        let outcome = try await runtime.login.login(username: username, password: form["password"] ?? "", remoteAddress: context.remoteAddress)
        func again(_ status: HTTPResponse.Status, _ error: String) async throws -> Response {
            var clientName: String?
            if let p = pendingResult { clientName = try await runtime.provider.clients.client(id: p.request.clientID)?.name }
            var view = LoginView(csrf: browser.csrfToken(browserID: bid), pending: pendingResult?.id, clientName: clientName,
                                 username: String(username.prefix(256)), error: error, next: Self.safeNext(form["next"]))
            view.requestID = context.requestID
            return Responses.html(status, pages.render(view))
        }
        switch outcome {
        case .invalidCredentials:
            return try await again(.unauthorized, "Incorrect username or password.")
        case .lockedOut(let until):
            return try await again(.tooManyRequests, Self.tooManyAttempts(until: until, now: runtime.clock.now()))
        case .refused(let why):
            return try await again(.forbidden, why)
        case .unavailable:
            return errorPage(.serviceUnavailable, context, heading: "Sign-in is unavailable",
                             message: "The account directory cannot be reached right now. Nothing was changed.",
                             hint: "Try again in a minute. If it persists, tell your administrator.", backLink: "/login", backLabel: "Back to sign in")
        case .success(let identity, let method):
            return try await afterFirstFactor(identity, method: method, pending: pendingResult, next: Self.safeNext(form["next"]), request, context)
        }
    }

    /// "Too many failed attempts. Try again in 3 minutes." (whole minutes, rounded up, at least one).
    static func tooManyAttempts(_ what: String = "failed attempts", until: Date, now: Date) -> String {
        let minutes = max(1, Int((until.timeIntervalSince(now) / 60).rounded(.up)))
        return "Too many \(what). Try again in \(minutes) minute\(minutes == 1 ? "" : "s")."
    }

    /// Where to go after login: only a local path of this portal (no scheme, no "//host", no backslash).
    static func safeNext(_ next: String?) -> String? {
        guard let n = next, n.hasPrefix("/"), !n.hasPrefix("//"), !n.contains("\\"), n.count <= 512,
              n.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else { return nil }
        return n
    }

    // MARK: / (home)

    func home(_ request: Request, _ context: PortalContext) async throws -> Response {
        guard let (session, identity) = try await currentSession(request) else { return Responses.redirect("/login") }
        let admin = isAdmin(identity, runtime)
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: admin, section: .home)
        let (flash, clear) = browser.takeFlash(request)
        var view = HomeView(chrome: chrome, username: identity.username, displayName: identity.displayName.isEmpty ? identity.username : identity.displayName,
                            subject: identity.subject, email: identity.email.isEmpty ? nil : identity.email, groups: identity.groups,
                            isAdmin: admin, method: session.authMethod, sessionEnds: AdminPages.date(session.expiresAt), notice: flash?.notice)
        view.error = flash?.error
        if admin { view.steps = try await nextSteps() }
        return Responses.html(.ok, pages.render(view), cookies: setCookie + clear)
    }

    /// What a new portal still needs, for administrators; empty once people and a cluster exist.
    func nextSteps() async throws -> [HomeView.Step] {
        let localUsers = try await runtime.storage.searchUsers("", limit: 2, offset: 0).total
        let people = runtime.provider.directory != nil || localUsers > 1
        let clusters = !runtime.clusters.isEmpty
        guard !(people && clusters) else { return [] }
        return [
            .init(title: "Add people", text: people ? "People can sign in." : "Add local accounts, or connect your directory (ldap: in the configuration file).",
                  done: people, href: people ? nil : "/admin/users#add", link: "Add a user"),
            .init(title: "Declare a cluster", text: clusters ? "kubectl can be set up." : "List each cluster under kubernetes.clusters in the configuration file (name, server, CA), then restart the portal.",
                  done: clusters, code: clusters ? nil : "kubernetes:\n  clusters:\n    - name: prod\n      server: https://k8s.example.org:6443"),
            .init(title: "Point the API server here", text: "Give kube-apiserver the flags or AuthenticationConfiguration that make it trust this portal.",
                  done: false, href: "/admin/apiserver", link: "Open API server setup"),
        ]
    }

    // MARK: /setup (first run)

    func setupPage(_ request: Request, _ context: PortalContext) async throws -> Response {
        let token = request.queryParameters?["token"] ?? ""
        guard try await runtime.setup.tokenIsUsable(token) else { return setupLinkDead(context) }
        let (bid, setCookie) = browser.browserID(request)
        let view = SetupView(csrf: browser.csrfToken(browserID: bid), token: token, minLength: runtime.config.passwords.minLength)
        return Responses.html(.ok, pages.render(view), cookies: setCookie.map { [$0] } ?? [], secret: true)
    }

    func setupLinkDead(_ context: PortalContext) -> Response {
        errorPage(.gone, context, heading: "This setup link cannot be used",
                  message: "The link has expired or has already been used.",
                  hint: "Restart the portal to print a new link if no administrator exists yet, or sign in.", backLink: "/login", backLabel: "Sign in")
    }

    func setupSubmit(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes) else { return badRequestPage(context, "The form could not be read.") }
        guard browser.csrfValid(request, form: form), let bid = request.cookie(browser.browserCookieName) else {
            return errorPage(.forbidden, context, heading: "This form has expired", message: "Open the setup link again.", backLink: nil)
        }
        let token = form["token"] ?? ""
        let outcome = try await runtime.setup.complete(token: token, username: form["username"] ?? "", password: form["password"] ?? "",
                                                       confirmation: form["confirm"] ?? "", remoteAddress: context.remoteAddress)
        switch outcome {
        case .rejected(let why):
            let view = SetupView(csrf: browser.csrfToken(browserID: bid), token: token, username: String((form["username"] ?? "").prefix(64)),
                                 minLength: runtime.config.passwords.minLength, error: why)
            return Responses.html(.badRequest, pages.render(view), secret: true)
        case .invalidToken, .adminExists:
            return setupLinkDead(context)
        case .created(let admin):
            let (cookie, _) = try await runtime.login.startSession(identity: Identity(user: admin), method: "password",
                                                                   remoteAddress: context.remoteAddress, userAgent: request.headers[.userAgent] ?? "")
            await runtime.login.remember(account: admin.username, remoteAddress: context.remoteAddress)
            let fresh = browser.freshBrowser()
            return browser.done(request, "/", notice: "Welcome, \(admin.username): you are the first administrator.",
                                cookies: [browser.sessionCookie(cookie), fresh.setCookie], browserID: fresh.id)
        }
    }
}
