import Foundation
import Hummingbird
import IdP
import Templates

/// /account/factors: a person's passkeys and authenticator apps (add, name, remove) and recovery codes.
/// Adding to factors already held, removing one and new recovery codes need a factor confirmed in this
/// session within five minutes (else /step-up first).
struct FactorRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    static let page = "/account/factors"

    func register(_ router: Router<PortalContext>) {
        router.get("/account/factors") { request, _ in
            guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Faccount%2Ffactors") }
            return try await list(request, s, identity)
        }
        router.get("/account/factors/totp") { request, _ in
            guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Faccount%2Ffactors") }
            if try await StepUp(runtime: runtime).needed(s, within: StepUp.recentWindow) { return stepUp() }
            let enrollment = try await runtime.factors.startTOTP(identity)
            return try totpPage(request, identity, enrollment)
        }
        router.post("/account/factors/totp") { request, context in try await mutate(request, context, recent: false) { form, s, identity in
            guard let enrollment = try await runtime.factors.enrollment(id: form["enrollment"] ?? "", identity: identity) else {
                return .status(.badRequest, "That enrollment is unknown or has expired. Start again with Add an authenticator app.")
            }
            switch try await runtime.factors.confirmTOTP(identity, enrollment: enrollment.id, code: form["code"] ?? "", name: form["name"] ?? "",
                                                         remoteAddress: context.remoteAddress) {
            case .accepted(let amr, _):
                try await runtime.storage.markSessionFactor(hash: s.hash, amr: AMR.adding(amr, to: s.amr), at: runtime.clock.now())
                return .notice("Authenticator app added. You will be asked for its code at sign-in.")
            case .wrong:
                return .page(try totpPage(request, identity, enrollment, name: form["name"] ?? "",
                                          error: "That code is not right. Check the app shows this portal's entry, and type the code it shows now.", status: .badRequest))
            case .lockedOut(let until):
                return .page(try totpPage(request, identity, enrollment, name: form["name"] ?? "",
                                          error: BrowserRoutes.tooManyAttempts(until: until, now: runtime.clock.now()), status: .tooManyRequests))
            }
        } }
        router.post("/account/factors/passkey") { request, context in try await mutate(request, context, recent: true) { form, s, identity in
            guard let bid = request.cookie(browser.browserCookieName) else { return .error("This form has expired. Reload the page.") }
            switch try await runtime.passkeys.register(identity, credential: form["credential"] ?? "", name: form["name"] ?? "", browserID: bid,
                                                       remoteAddress: context.remoteAddress) {
            case .success(let factor):
                try await runtime.storage.markSessionFactor(hash: s.hash, amr: AMR.adding(AMR.passkey(backupEligible: factor.backupEligible), to: s.amr),
                                                            at: runtime.clock.now())
                return .notice("Passkey “\(factor.name)” added. You can sign in with it, without typing a username.")
            case .failure(let why):
                return .status(.badRequest, "The passkey was not added: \(why.reason).")
            }
        } }
        router.post("/account/factors/recovery") { request, context in try await mutate(request, context, recent: true) { _, _, identity in
            guard try await runtime.factors.holdsFactor(userID: identity.subject) else {
                return .error("Add a passkey or an authenticator app first: recovery codes stand in for one.")
            }
            let codes = try await runtime.factors.newRecoveryCodes(identity, remoteAddress: context.remoteAddress)
            let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
            return .page(Responses.html(.ok, pages.render(RecoveryCodesView(chrome: chrome, codes: codes)), cookies: cookies, secret: true))
        } }
        router.post("/account/factors/rename") { request, context in try await mutate(request, context, recent: false) { form, _, identity in
            guard try await runtime.factors.rename(identity, id: form["id"] ?? "", name: form["name"] ?? "", remoteAddress: context.remoteAddress) else {
                return .error("That factor is not yours, no longer exists, or the name is empty.")
            }
            return .notice("Renamed.")
        } }
        router.post("/account/factors/remove") { request, context in try await mutate(request, context, recent: true) { form, s, identity in
            let held = try await runtime.factors.factors(userID: identity.subject)
            guard held.contains(where: { $0.id == form["id"] }) else { return .error("That factor is not yours, or no longer exists.") }
            if held.count == 1, runtime.config.mfa.applies(to: identity, isAdmin: isAdmin(identity, runtime)) {
                return .status(.conflict, "This is your only second factor, and your account requires one: add another before removing it.")
            }
            _ = try await runtime.factors.remove(identity, id: form["id"] ?? "", remoteAddress: context.remoteAddress)
            return .notice("Removed. It can no longer sign you in.")
        } }
    }

    enum Outcome { case notice(String), error(String), status(HTTPResponse.Status, String), page(Response) }

    func stepUp() -> Response { Responses.redirect("/step-up?next=" + FormParameters.escape(Self.page), status: .seeOther) }

    /// A CSRF-checked POST of the signed-in person. `recent`: when the person holds a factor, one must have
    /// been confirmed in this session within five minutes (else /step-up first).
    func mutate(_ request: Request, _ context: PortalContext, recent: Bool,
                _ body: (FormParameters, LoginSession, Identity) async throws -> Outcome) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                     requestID: context.requestID, backLink: Self.page, backLabel: "Back to second factors")))
        }
        guard let (s, identity) = try await session(request) else { return Responses.redirect("/login?next=%2Faccount%2Ffactors", status: .seeOther) }
        if recent, try await StepUp(runtime: runtime).needed(s, within: StepUp.recentWindow) { return stepUp() }
        switch try await body(form, s, identity) {
        case .notice(let n): return browser.done(request, Self.page, notice: n)
        case .error(let e): return browser.done(request, Self.page, error: e)
        case .status(let status, let message):
            return Responses.html(status, pages.render(ErrorView(heading: status == .conflict ? "Not removed" : "Not done", message: message,
                                                                 requestID: context.requestID, backLink: Self.page, backLabel: "Back to second factors")))
        case .page(let r): return r
        }
    }

    func list(_ request: Request, _ s: LoginSession, _ identity: Identity) async throws -> Response {
        let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        let (flash, clear) = browser.takeFlash(request)
        let rows = try await runtime.factors.factors(userID: identity.subject).map { f in
            FactorsView.Row(id: f.id, name: f.name, kind: f.kind == .passkey ? "Passkey" : "Authenticator app", added: AdminPages.date(f.createdAt),
                            lastUsed: f.lastUsedAt.map(AdminPages.date) ?? "never", csrf: chrome.csrf)
        }
        var view = FactorsView(chrome: chrome, rows: rows, recoveryLeft: try await runtime.factors.recoveryCodesLeft(userID: identity.subject),
                               recoveryTotal: SecondFactors.recoveryCodeCount)
        view.notice = flash?.notice; view.error = flash?.error
        if try await MFAGate(runtime: runtime).verdict(s, identity) == .blocked {
            view.required = MFAGate.blockedMessage + (rows.isEmpty ? " Add one below." : " Sign in again with it.")
        }
        return Responses.html(.ok, pages.render(view), cookies: cookies + clear)
    }

    func totpPage(_ request: Request, _ identity: Identity, _ e: TOTPEnrollment, name: String = "", error: String? = nil,
                  status: HTTPResponse.Status = .ok) throws -> Response {
        let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        let svg = try QRCode.encode(e.uri).svg(label: "QR code for your authenticator app: scan it to add this portal")
        let view = TOTPEnrollView(chrome: chrome, enrollment: e.id, qrSVG: svg, secret: e.secretText, name: name, error: error)
        return Responses.html(status, pages.render(view), cookies: cookies, secret: true)
    }
}
