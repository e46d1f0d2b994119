import Foundation
import Hummingbird
import IdP
import Templates

/// /device: where a signed-in person types the code a device shows, sees who asked and for what,
/// and approves or denies (RFC 8628 §3.3, with §5.4's advice against remote phishing on the page).
/// Wrong codes count in the sign-in throttle, per person and address, like wrong passwords.
struct DeviceGrantRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    func register(_ router: Router<PortalContext>) {
        router.get("/device") { request, context in
            let code = request.queryParameters?["user_code"]
            guard let (_, identity) = try await session(request) else {
                let next = "/device" + (code.map { "?user_code=" + FormParameters.escape($0) } ?? "")
                return Responses.redirect("/login?next=" + FormParameters.escape(next))
            }
            guard let code, !code.isEmpty else {
                let (flash, clear) = browser.takeFlash(request)
                return page(request, identity, status: .ok, notice: flash?.notice, error: flash?.error, cookies: clear)
            }
            return try await lookUp(code, request, identity, context)
        }
        router.post("/device") { request, context in
            var request = request
            guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else { return expired(context) }
            guard let (_, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fdevice", status: .seeOther) }
            return try await lookUp(form["user_code"] ?? "", request, identity, context)
        }
        router.post("/device/decide") { request, context in
            var request = request
            guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else { return expired(context) }
            guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Fdevice", status: .seeOther) }
            guard let code = UserCode.normalize(form["user_code"] ?? ""), ["approve", "deny"].contains(form["decision"] ?? "") else {
                return browser.done(request, "/device", error: "That request could not be read. Type the code again.")
            }
            let approve = form["decision"] == "approve"
            if approve, try await MFAGate(runtime: runtime).verdict(s, identity) == .blocked {
                return MFAGate.refusal(pages, requestID: context.requestID)
            }
            guard try await runtime.provider.decideDevice(userCode: code, approve: approve, session: s, identity: identity,
                                                          remoteAddress: context.remoteAddress) else {
                return browser.done(request, "/device", error: "That code is no longer waiting: it was answered already, or it expired. Start again on your device.")
            }
            return browser.done(request, "/device", notice: approve ? "Approved. Go back to your device: it signs in within a few seconds."
                                : "Denied. The device gets nothing.")
        }
    }

    func expired(_ context: PortalContext) -> Response {
        Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                          requestID: context.requestID, backLink: "/device", backLabel: "Back")))
    }

    func page(_ request: Request, _ identity: Identity, status: HTTPResponse.Status, notice: String? = nil, error: String? = nil,
              typed: String = "", cookies: [String] = []) -> Response {
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        var view = DeviceView(chrome: chrome)
        view.notice = notice; view.error = error; view.userCode = String(typed.prefix(20))
        return Responses.html(status, pages.render(view), cookies: setCookie + cookies)
    }

    /// A typed (or linked) code: the request to approve, or the form again with why not.
    func lookUp(_ typed: String, _ request: Request, _ identity: Identity, _ context: PortalContext) async throws -> Response {
        let throttle = runtime.login.throttle
        let now = runtime.clock.now()
        let keys = try await throttle.keys(account: "device:" + identity.username, remoteAddress: context.remoteAddress, now: now)
        if let wait = try await throttle.waiting(keys, now: now) {
            return page(request, identity, status: .tooManyRequests, error: BrowserRoutes.tooManyAttempts("wrong codes", until: wait.until, now: now))
        }
        guard let code = UserCode.normalize(typed), let g = try await runtime.storage.deviceGrant(userCode: code), g.status == .pending,
              g.expiresAt > now else {
            _ = try await throttle.failed(keys, now: now)
            await runtime.provider.auditor.record("device.code_unknown", actor: identity.username, subject: identity.subject,
                                                  remoteAddress: context.remoteAddress, success: false)
            return page(request, identity, status: .notFound, error: "That code is unknown, already answered, or expired. Check it against your device, or start again there.",
                        typed: typed)
        }
        let (chrome, setCookie) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        var view = DeviceView(chrome: chrome)
        view.confirm = true
        view.userCode = UserCode.display(code)
        view.clientName = try await runtime.provider.clients.client(id: g.clientID)?.name ?? g.clientID
        view.access = Self.describe(g.scopes, kubernetes: runtime.provider.kubernetesClients.contains(g.clientID))
        view.address = g.address.isEmpty ? "an unknown address" : g.address
        view.device = DeviceName.describe(userAgent: g.userAgent)
        view.requested = AdminPages.ago(g.createdAt, now: now)
        view.expires = AdminPages.relative(g.expiresAt, now: now)
        return Responses.html(.ok, pages.render(view), cookies: setCookie)
    }

    static func describe(_ scopes: [String], kubernetes: Bool) -> [String] {
        var out = ["Your identity: username, name and subject"]
        if scopes.contains("email") { out.append("Your email address") }
        if scopes.contains("groups") { out.append(kubernetes ? "Your groups, which decide what you may do in the clusters" : "Your groups") }
        if scopes.contains("offline_access") { out.append("A session that stays signed in until it ends or you end it in Your devices") }
        return out
    }
}
