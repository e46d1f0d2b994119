import Foundation
import Hummingbird
import IdP
import Templates

/// "Your devices" (every browser session and every kubectl or application session of the signed-in
/// person: end one, end all but this browser, name one) and changing one's own password.
struct DeviceRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?
    var signout: Signout { Signout(provider: runtime.provider) }

    func register(_ router: Router<PortalContext>) {
        router.get("/devices") { request, _ in
            guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fdevices") }
            return try await page(request, s, identity)
        }
        router.post("/devices/revoke") { request, context in try await mutate(request, context) { form, s, identity in
            let id = form["id"] ?? ""
            let now = runtime.clock.now()
            if let other = try await runtime.storage.session(sid: id), other.userID == identity.subject, other.expiresAt > now {
                guard other.hash != s.hash else { return .error("To sign out of this browser, use Sign out in the top bar.") }
                let ended = try await signout.endBrowserSession(other, scope: .browser, reason: "ended from Your devices")
                await audit("session.end", identity, context, ["session": id, "families": String(ended.families)])
                return .notice("Signed out \(DeviceName.describe(userAgent: other.userAgent)) at \(other.address.isEmpty ? "an unknown address" : other.address).")
            }
            guard let f = try await runtime.storage.family(id: id), f.grant.userID == identity.subject else {
                return .error("That session is not yours, or no longer exists.")
            }
            guard f.revokedAt == nil, f.expiresAt > now else { return .notice("That session had already ended.") }
            _ = try await signout.endFamily(f, reason: "ended from Your devices")
            await audit("session.revoke", identity, context, ["family": f.id, "client": f.grant.clientID])
            let kubectl = runtime.provider.kubernetesClients.contains(f.grant.clientID)
            return .notice(kubectl ? "Ended \(name(f)). kubectl there stops within \(DurationParser.words(runtime.config.tokens.idTokenTTL)) and says to sign in again at \(runtime.config.issuer)/kubernetes."
                : "Ended \(name(f)). The application signs you out at its next check.")
        } }
        router.post("/devices/revoke-others") { request, context in try await mutate(request, context) { form, s, identity in
            guard form["confirm"] == "yes" else {
                let now = runtime.clock.now()
                let others = try await runtime.login.liveSessions(userID: identity.subject).filter { $0.hash != s.hash }.count
                let families = try await runtime.storage.activeFamilies(userID: identity.subject, now: now).count
                return .confirm(Confirmation(heading: "End everything except this browser?", consequences: [
                    "\(Self.count(others, "other browser")) sign\(others == 1 ? "s" : "") out of the portal.",
                    "\(Self.count(families, "kubectl or application session")) end, the ones started from this browser included: kubectl there stops within \(DurationParser.words(runtime.config.tokens.idTokenTTL)) and asks for a new sign-in.",
                    "This browser stays signed in. If you think your password is known to someone else, change it too.",
                ], submit: "End everything except this browser"))
            }
            let ended = try await signout.endEverywhere(userID: identity.subject, keeping: s.hash, reason: "ended from Your devices")
            await audit("session.revoke_others", identity, context, ["sessions": String(ended.sessions), "families": String(ended.families)])
            return .notice("Ended \(Self.count(ended.sessions, "other browser")) and \(Self.count(ended.families, "kubectl or application session")). Only this browser is still signed in.")
        } }
        router.post("/devices/label") { request, context in try await mutate(request, context) { form, _, identity in
            let label = (form["label"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard label.count <= 60, !Identifiers.hasControlCharacters(label) else { return .error("A name has at most 60 characters.") }
            guard try await runtime.storage.setFamilyLabel(id: form["id"] ?? "", userID: identity.subject, label: label) else {
                return .error("That session is not yours, or no longer exists.")
            }
            return .notice(label.isEmpty ? "Name removed." : "Named “\(label)”.")
        } }
        router.get("/account/password") { request, _ in
            guard let (_, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Faccount%2Fpassword") }
            return try await passwordPage(request, identity, status: .ok)
        }
        router.post("/account/password") { request, context in try await changePassword(request, context) }
    }

    static func count(_ n: Int, _ what: String) -> String { "\(n) \(what)\(n == 1 ? "" : "s")" }

    func audit(_ type: String, _ identity: Identity, _ context: PortalContext, _ details: [String: String]) async {
        await runtime.provider.auditor.record(type, actor: identity.username, subject: identity.subject, remoteAddress: context.remoteAddress,
                                              details: details)
    }

    enum Outcome { case notice(String), error(String), confirm(Confirmation) }

    func mutate(_ request: Request, _ context: PortalContext,
                _ body: (FormParameters, LoginSession, Identity) async throws -> Outcome) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                     requestID: context.requestID, backLink: "/devices", backLabel: "Back to your devices")))
        }
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fdevices", status: .seeOther) }
        switch try await body(form, s, identity) {
        case .notice(let n): return browser.done(request, "/devices", notice: n)
        case .error(let e): return browser.done(request, "/devices", error: e)
        case .confirm(let c):
            let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
            return Responses.html(.ok, pages.render(c.view(chrome: chrome, action: request.uri.path, hidden: [], cancel: "/devices")), cookies: cookies)
        }
    }

    /// The person's name for a family, or what it is.
    func name(_ f: RefreshFamily) -> String {
        if !f.label.isEmpty { return "“\(f.label)”" }
        return runtime.provider.kubernetesClients.contains(f.grant.clientID) ? "kubectl on \(DeviceName.describe(userAgent: f.userAgent))"
            : "the session of \(f.grant.clientID)"
    }

    func origin(_ f: RefreshFamily, clientName: String) -> String {
        switch f.purpose {
        case "kubectl command": "the kubectl page"
        case "kubeconfig download": "a kubeconfig download"
        case "signin": "signing in to \(clientName)"
        case "device": "a code approved at /device"
        default: f.purpose.isEmpty ? "—" : f.purpose
        }
    }

    func page(_ request: Request, _ s: LoginSession, _ identity: Identity) async throws -> Response {
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        let (flash, clear) = browser.takeFlash(request)
        let now = runtime.clock.now()
        let d = AdminPages.date
        let browsers = try await runtime.login.liveSessions(userID: identity.subject).map { b in
            DevicesView.Browser(id: b.sid, device: DeviceName.describe(userAgent: b.userAgent), address: b.address.isEmpty ? "—" : b.address,
                                started: d(b.createdAt), lastActive: AdminPages.ago(b.lastSeenAt, now: now),
                                ends: d(runtime.login.idleEnd(b)), current: b.hash == s.hash, csrf: chrome.csrf)
        }.sorted { $0.current && !$1.current }
        var names: [String: String] = [:]
        for c in try await runtime.provider.clients.all() { names[c.id] = c.name.isEmpty ? c.id : c.name }
        let sessions = try await runtime.storage.activeFamilies(userID: identity.subject, now: now).map { f in
            let client = names[f.grant.clientID] ?? f.grant.clientID
            return DevicesView.Session(id: f.id, name: f.label.isEmpty ? DeviceName.describe(userAgent: f.userAgent) : f.label, label: f.label,
                                       client: client, origin: origin(f, clientName: client), device: DeviceName.describe(userAgent: f.userAgent),
                                       address: f.address.isEmpty ? "—" : f.address, started: d(f.createdAt),
                                       lastUsed: AdminPages.ago(f.lastUsedAt, now: now), expires: d(f.expiresAt),
                                       fromHere: f.grant.sessionID == s.sid, csrf: chrome.csrf)
        }
        let view = DevicesView(chrome: chrome, browsers: browsers, sessions: sessions, idle: DurationParser.words(runtime.config.tokens.sessionIdleTimeout),
                               notice: flash?.notice, error: flash?.error)
        return Responses.html(.ok, pages.render(view), cookies: setCookie + clear)
    }

    // MARK: Password change

    func passwordPage(_ request: Request, _ identity: Identity, status: HTTPResponse.Status, error: String? = nil) async throws -> Response {
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        let local = try await runtime.storage.user(id: identity.subject)
        let view = PasswordView(chrome: chrome, minLength: runtime.config.passwords.minLength, directory: local == nil, error: error)
        return Responses.html(status, pages.render(view), cookies: setCookie, secret: true)
    }

    func changePassword(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                     requestID: context.requestID, backLink: "/account/password", backLabel: "Back")))
        }
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Faccount%2Fpassword", status: .seeOther) }
        guard let user = try await runtime.storage.user(id: identity.subject), user.passwordHash != nil else {
            return try await passwordPage(request, identity, status: .badRequest, error: "This account has no portal password to change.")
        }
        let new = form["password"] ?? ""
        guard new == (form["confirm"] ?? "") else {
            return try await passwordPage(request, identity, status: .badRequest, error: "The two new passwords differ. Nothing was changed.")
        }
        // The current password is checked as a sign-in: throttled, and audited, like one.
        switch try await runtime.login.login(username: user.username, password: form["current"] ?? "", remoteAddress: context.remoteAddress) {
        case .success(let who, _) where who.subject == user.id:
            break
        case .lockedOut(let until):
            return try await passwordPage(request, identity, status: .tooManyRequests,
                                          error: BrowserRoutes.tooManyAttempts(until: until, now: runtime.clock.now()))
        case .unavailable:
            return try await passwordPage(request, identity, status: .serviceUnavailable, error: "The password cannot be checked right now. Nothing was changed.")
        default:
            return try await passwordPage(request, identity, status: .forbidden, error: "The current password is not right. Nothing was changed.")
        }
        do {
            try await runtime.users.setPassword(user.username, password: new, actor: identity.username, keeping: s.hash)
        } catch let e as UserAdminError {
            return try await passwordPage(request, identity, status: .badRequest, error: e.description + " Nothing was changed.")
        }
        return browser.done(request, "/devices", notice: "Password changed. Every other browser, kubectl and application session has been signed out.")
    }
}
