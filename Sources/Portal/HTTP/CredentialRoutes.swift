import Foundation
import Hummingbird
import IdP
import Templates

/// Self-service application credentials: create (secret shown once, with a ready kubeconfig
/// per cluster), list, rotate with overlap, revoke.
struct CredentialRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    func register(_ router: Router<PortalContext>) {
        router.get("/credentials") { request, context in
            guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fcredentials") }
            return try await page(request, identity: identity, method: s.authMethod)
        }
        router.post("/credentials") { request, context in try await mutate(request, context) { form, identity, method in
            let lifetime = TimeInterval(form["expires"] ?? "") ?? runtime.config.credentials.maxUserLifetime
            let groups = form.pairs.filter { $0.0 == "group" }.map(\.1)
            let (c, token) = try await runtime.credentials.create(owner: .user(identity, method: method), name: form["name"] ?? "",
                                                                  description: form["description"] ?? "", lifetime: lifetime,
                                                                  groups: groups.isEmpty ? nil : groups, actor: identity.username,
                                                                  remoteAddress: context.remoteAddress)
            return .created(c.name, token)
        } }
        router.post("/credentials/rotate") { request, context in try await mutate(request, context) { form, identity, _ in
            let id = form["id"] ?? ""
            guard try await owned(id, by: identity) else { throw CredentialError("That credential is not yours.") }
            let (c, token) = try await runtime.credentials.rotate(id: id, overlap: TimeInterval(form["overlap"] ?? "0") ?? 0,
                                                                  actor: identity.username, remoteAddress: context.remoteAddress)
            return .created(c.name, token)
        } }
        router.post("/credentials/revoke") { request, context in try await mutate(request, context) { form, identity, _ in
            let id = form["id"] ?? ""
            guard try await owned(id, by: identity) else { throw CredentialError("That credential is not yours.") }
            _ = try await runtime.credentials.revoke(id: id, actor: identity.username, remoteAddress: context.remoteAddress)
            return .notice("Revoked. The API server may keep accepting it for up to its webhook cache TTL (2 minutes by default).")
        } }
    }

    enum Outcome { case created(String, String), notice(String) }

    func owned(_ id: String, by identity: Identity) async throws -> Bool {
        guard let c = try await runtime.storage.credential(id: id) else { return false }
        return c.ownerKind == .user && c.ownerID == identity.subject
    }

    func mutate(_ request: Request, _ context: PortalContext,
                _ body: (FormParameters, Identity, String) async throws -> Outcome) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                     requestID: context.requestID, backLink: "/credentials", backLabel: "Back to credentials")))
        }
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fcredentials", status: .seeOther) }
        do {
            switch try await body(form, identity, s.authMethod) {
            case .created(let name, let token):
                return try await page(request, identity: identity, method: s.authMethod, created: (name, token))
            case .notice(let n):
                return try await page(request, identity: identity, method: s.authMethod, notice: n)
            }
        } catch let e as CredentialError {
            return try await page(request, identity: identity, method: s.authMethod, error: e.description, status: .badRequest)
        }
    }

    static func date(_ d: Date?) -> String {
        guard let d else { return "never" }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d) + " UTC"
    }

    func lifetimes(max: TimeInterval) -> [CredentialsView.Lifetime] {
        var options: [TimeInterval] = [86400, 7 * 86400, 30 * 86400, 90 * 86400, 180 * 86400, 365 * 86400].filter { $0 < max }
        options.append(max)
        return options.map { CredentialsView.Lifetime(value: Int($0), label: DurationParser.words($0), selected: $0 == min(30 * 86400, max)) }
    }

    func page(_ request: Request, identity: Identity, method: String, created: (String, String)? = nil, error: String? = nil,
              notice: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let (bid, setCookie) = browser.browserID(request)
        let csrf = browser.csrfToken(browserID: bid)
        let items = try await runtime.storage.listCredentials(ownerID: identity.subject, includeRevoked: false).map { c in
            CredentialsView.Item(id: c.id, name: c.name, description: c.description, created: Self.date(c.createdAt),
                                 lastUsed: Self.date(c.lastUsedAt), expires: Self.date(c.expiresAt),
                                 groups: (c.groups ?? identity.groups).joined(separator: ", ") + (c.groups == nil ? " (all)" : ""),
                                 csrf: csrf, rotateAction: "/credentials/rotate", revokeAction: "/credentials/revoke")
        }
        let createdView = created.map { name, token in
            CredentialsView.Created(name: name, token: token, kubeconfigs: runtime.clusters.enumerated().map { i, c in
                CredentialsView.Kubeconfig(index: i, cluster: c.name, yaml: Kubeconfig.yaml([
                    KubeconfigEntry(cluster: c, userName: identity.username, auth: .token(token)),
                ]))
            })
        }
        let view = CredentialsView(csrf: csrf, username: identity.username, isAdmin: isAdmin(identity, runtime),
                                   lifetimes: lifetimes(max: runtime.config.credentials.maxUserLifetime), groups: identity.groups,
                                   items: items, created: createdView, error: error, notice: notice)
        return Responses.html(status, pages.render(view), cookies: setCookie.map { [$0] } ?? [])
    }
}

/// Administrators: the admin flag, or membership in one of `admin_groups`.
func isAdmin(_ identity: Identity, _ runtime: Runtime) -> Bool {
    identity.isAdmin || identity.groups.contains { runtime.config.adminGroups.contains($0) }
}
