import Foundation
import Hummingbird
import IdP
import Templates

/// Self-service application credentials: create (secret shown once, with a ready kubeconfig
/// per cluster), list, rotate with overlap, revoke. Rotate and revoke ask first; every change
/// ends in a 303, and a new secret is shown from a GET that works once (`/shown/<id>`).
struct CredentialRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    static let overlaps: [(TimeInterval, String)] = [(3600, "1 hour"), (86400, "1 day"), (7 * 86400, "1 week"), (0, "no overlap: the old secret dies now")]
    static let defaultOverlap: TimeInterval = 3600

    func register(_ router: Router<PortalContext>) {
        router.get("/credentials") { request, context in
            guard let (_, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fcredentials") }
            let (flash, clear) = browser.takeFlash(request)
            return try await page(request, identity: identity, error: flash?.error, notice: flash?.notice, cookies: clear)
        }
        router.post("/credentials") { request, context in try await mutate(request, context) { form, identity, method in
            let r = try CredentialForms(runtime: runtime).read(form, ownerGroups: identity.groups, max: runtime.config.credentials.maxUserLifetime)
            let (c, token) = try await runtime.credentials.create(owner: .user(identity, method: method), name: r.name, description: r.description,
                                                                  lifetime: r.lifetime, groups: r.groups, actor: identity.username,
                                                                  remoteAddress: context.remoteAddress)
            return .reveal(["token": token, "name": c.name, "user": identity.username, "back": "/credentials"],
                           "Created “\(c.name)”, valid until \(AdminPages.date(c.expiresAt)).")
        } }
        router.post("/credentials/rotate") { request, context in try await mutate(request, context) { form, identity, _ in
            let c = try await owned(form["id"], by: identity)
            guard form["confirm"] == "yes" else {
                let now = runtime.clock.now()
                let choices = Self.overlaps.filter { $0.0 <= runtime.config.credentials.maxRotationOverlap }
                return .confirm(Confirmation(heading: "Rotate “\(c.name)”?", consequences: [
                    "A new secret is made and shown once. Put it where the old one is used (a CI variable, a kubeconfig).",
                    "The old secret keeps working for the overlap you choose, then stops. Both stop when the credential expires, \(AdminPages.date(c.expiresAt)).",
                ], submit: "Rotate “\(c.name)”", choice: .init(legend: "The old secret keeps working for", options: choices.map { s, label in
                    .init(name: "overlap", value: String(Int(s)), label: label, hint: s > 0 ? "until \(AdminPages.date(min(now + s, c.expiresAt)))" : nil,
                          selected: s == min(Self.defaultOverlap, choices.map(\.0).max() ?? 0))
                })))
            }
            let overlap = TimeInterval(form["overlap"] ?? "") ?? Self.defaultOverlap
            let (rotated, token) = try await runtime.credentials.rotate(id: c.id, overlap: overlap, actor: identity.username,
                                                                        remoteAddress: context.remoteAddress)
            // The old secret never outlives the credential (it expires with it).
            let old = overlap > 0 ? "The old secret works until \(AdminPages.date(min(runtime.clock.now() + overlap, rotated.expiresAt)))."
                : "The old secret no longer works."
            return .reveal(["token": token, "name": rotated.name, "user": identity.username, "back": "/credentials"], "Rotated “\(rotated.name)”. \(old)")
        } }
        router.post("/credentials/revoke") { request, context in try await mutate(request, context) { form, identity, _ in
            let c = try await owned(form["id"], by: identity)
            guard form["confirm"] == "yes" else {
                return .confirm(Confirmation(heading: "Revoke “\(c.name)”?", consequences: [
                    "“\(c.name)” stops authenticating \(AdminRoutes.webhookCache).",
                    "Whatever uses it (a CI job, a script) stops working. This cannot be undone.",
                ], submit: "Revoke “\(c.name)”"))
            }
            let done = try await runtime.credentials.revoke(id: c.id, actor: identity.username, remoteAddress: context.remoteAddress)
            return .notice(done ? "Revoked “\(c.name)”. The API server may keep accepting it for up to its webhook cache TTL (2 minutes by default)."
                : "“\(c.name)” was already revoked.")
        } }
    }

    enum Outcome { case reveal([String: String], String), notice(String), confirm(Confirmation) }

    func owned(_ id: String?, by identity: Identity) async throws -> ApplicationCredential {
        guard let c = try await runtime.storage.credential(id: id ?? ""), c.ownerKind == .user, c.ownerID == identity.subject else {
            throw CredentialError("That credential is not yours.")
        }
        guard c.revokedAt == nil else { throw CredentialError("“\(c.name)” is revoked.") }
        return c
    }

    func mutate(_ request: Request, _ context: PortalContext,
                _ body: (FormParameters, Identity, String) async throws -> Outcome) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                     requestID: context.requestID, backLink: "/credentials", backLabel: "Back to credentials")))
        }
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fcredentials", status: .seeOther) }
        // A credential is a token: none is made or renewed for a sign-in that lacks a factor the policy requires.
        if request.uri.path != "/credentials/revoke", try await MFAGate(runtime: runtime).verdict(s, identity) == .blocked {
            return MFAGate.refusal(pages, requestID: context.requestID)
        }
        do {
            switch try await body(form, identity, s.authMethod) {
            case .reveal(let payload, let notice):
                return try await Reveals(runtime: runtime, browser: browser).stash(kind: "credential", payload: payload, request: request, owner: identity, notice: notice)
            case .notice(let n):
                return browser.done(request, "/credentials", notice: n)
            case .confirm(let c):
                let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .credentials)
                let view = c.view(chrome: chrome, action: request.uri.path, hidden: [AdminView.Hidden("id", form["id"] ?? "")], cancel: "/credentials")
                return Responses.html(.ok, pages.render(view), cookies: cookies)
            }
        } catch let e as CredentialError {
            // Nothing changed: back to the list with the reason (a reload sends nothing again).
            return browser.done(request, "/credentials", error: e.description)
        }
    }

    func page(_ request: Request, identity: Identity, error: String? = nil, notice: String? = nil,
              cookies: [String] = []) async throws -> Response {
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .credentials)
        let now = runtime.clock.now()
        let items = try await runtime.storage.listCredentials(ownerID: identity.subject, includeRevoked: false).map { c in
            CredentialsView.Item(id: c.id, name: c.name, description: c.description.isEmpty ? nil : c.description, created: AdminPages.date(c.createdAt),
                                 lastUsed: AdminPages.date(c.lastUsedAt), expires: AdminPages.date(c.expiresAt),
                                 expiresIn: AdminPages.relative(c.expiresAt, now: now), soon: c.expiresAt.timeIntervalSince(now) < 7 * 86400,
                                 groups: c.groups.map { $0.joined(separator: ", ") } ?? "all of yours", csrf: chrome.csrf)
        }
        let intro = "For scripts and CI jobs: a token that works with stock kubectl (no plugin) until it expires or you revoke it. It carries your groups, or only some of them, and stops working the moment your account does."
        let view = CredentialsView(chrome: chrome, intro: intro, lifetimes: CredentialForms(runtime: runtime).lifetimes(max: runtime.config.credentials.maxUserLifetime),
                                   groups: identity.groups, items: items, error: error, notice: notice)
        return Responses.html(.ok, pages.render(view), cookies: setCookie + cookies)
    }
}

/// The create form shared by a person's credentials and an administrator's robot credentials.
struct CredentialForms {
    let runtime: Runtime

    struct Request { var name: String; var description: String; var lifetime: TimeInterval; var groups: [String]? }

    func lifetimes(max: TimeInterval) -> [LifetimeOption] {
        let now = runtime.clock.now()
        var options: [TimeInterval] = [86400, 7 * 86400, 30 * 86400, 90 * 86400, 180 * 86400, 365 * 86400].filter { $0 < max }
        options.append(max)
        return options.map { LifetimeOption(value: Int($0), label: DurationParser.words($0), until: String(AdminPages.date(now + $0).prefix(10)),
                                            selected: $0 == min(30 * 86400, max)) }
    }

    /// `scope=some` with the ticked groups, or every group of the owner (now and later).
    func read(_ form: FormParameters, ownerGroups: [String], max: TimeInterval) throws -> Request {
        let ticked = form.pairs.filter { $0.0 == "group" }.map(\.1)
        if form["scope"] == "some" && ticked.isEmpty { throw CredentialError("Tick at least one group, or choose all of the groups.") }
        if form["scope"] == "all" && !ticked.isEmpty {
            throw CredentialError("You chose all of the groups but ticked some: choose “Only the groups ticked below” to limit it.")
        }
        let groups: [String]? = ticked.isEmpty ? nil : ticked
        return Request(name: form["name"] ?? "", description: form["description"] ?? "", lifetime: TimeInterval(form["expires"] ?? "") ?? max,
                       groups: groups)
    }
}

/// Administrators: the admin flag, or membership in one of `admin_groups`.
func isAdmin(_ identity: Identity, _ runtime: Runtime) -> Bool {
    identity.isAdmin || identity.groups.contains { runtime.config.adminGroups.contains($0) }
}
