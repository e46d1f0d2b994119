import Foundation
import Hummingbird
import IdP
import Templates

/// The second step of a sign-in (/login/factor), signing in with a passkey alone (/login/passkey),
/// confirming a factor again (/step-up), and the WebAuthn options the page script asks for.
extension BrowserRoutes {
    func registerFactorSteps(_ router: Router<PortalContext>) {
        router.get("/login/factor") { request, context in try await factorPage(request, context) }
        router.post("/login/factor") { request, context in try await factorSubmit(request, context) }
        router.post("/login/passkey") { request, context in try await passkeySignIn(request, context) }
        router.post("/webauthn/options") { request, context in try await webauthnOptions(request, context) }
        router.get("/step-up") { request, context in try await stepUpPage(request, context) }
        router.post("/step-up") { request, context in try await stepUpSubmit(request, context) }
    }

    /// A form body, or the page that says it could not be read or has expired (CSRF).
    enum Checked { case success(FormParameters), failure(Response) }

    func checkedForm(_ request: inout Request, _ context: PortalContext, back: String) async -> Checked {
        let form: FormParameters
        do { form = try await request.form(limit: runtime.config.maxBodyBytes) } catch {
            return .failure(errorPage(error == .tooLarge ? .contentTooLarge : .badRequest, context, heading: "Bad request",
                                      message: "The form could not be read.", backLink: back, backLabel: "Back"))
        }
        guard browser.csrfValid(request, form: form) else {
            return .failure(errorPage(.forbidden, context, heading: "This form has expired",
                                      message: "For your safety the form can only be sent from the page that showed it, in the same browser.",
                                      hint: "Reload the page and try again.", backLink: back, backLabel: "Back"))
        }
        return .success(form)
    }

    // MARK: /login/factor

    func factorView(_ identity: Identity, action: String, heading: String, intro: String, next: String?, purpose: String,
                    chrome: Chrome?, csrf: String, error: String? = nil) async throws -> FactorStepView {
        let held = try await runtime.factors.factors(userID: identity.subject)
        let recovery = try await runtime.factors.recoveryCodesLeft(userID: identity.subject)
        let codes = held.contains { $0.kind == .totp } || recovery > 0
        return FactorStepView(chrome: chrome, csrf: csrf, action: action, heading: heading, intro: intro, next: next,
                              hasPasskey: held.contains { $0.kind == .passkey }, hasCodes: codes || !held.contains { $0.kind == .passkey },
                              purpose: purpose, error: error)
    }

    func signInExpired(_ context: PortalContext) -> Response {
        errorPage(.badRequest, context, heading: "This sign-in has expired",
                  message: "The second step must follow the password within five minutes, in the same browser.",
                  hint: "Sign in again.", backLink: "/login", backLabel: "Back to sign in", cookies: [browser.clearPendingSignInCookie()])
    }

    func factorPage(_ request: Request, _ context: PortalContext) async throws -> Response {
        guard let p = browser.pendingSignIn(request, now: runtime.clock.now()),
              let identity = try await runtime.login.identity(subject: p.u, method: p.m) else { return signInExpired(context) }
        let (bid, setCookie) = browser.browserID(request)
        let view = try await factorView(identity, action: "/login/factor", heading: "Confirm it's you",
                                        intro: "Signed in as \(identity.username) with your \(p.m == "kerberos" ? "Kerberos ticket" : "password"). Now use your second factor.",
                                        next: nil, purpose: "factor", chrome: nil, csrf: browser.csrfToken(browserID: bid))
        return Responses.html(.ok, pages.render(view), cookies: setCookie.map { [$0] } ?? [])
    }

    func factorSubmit(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        let form: FormParameters
        switch await checkedForm(&request, context, back: "/login") { case .success(let f): form = f; case .failure(let r): return r }
        guard let p = browser.pendingSignIn(request, now: runtime.clock.now()), let bid = request.cookie(browser.browserCookieName) else {
            return signInExpired(context)
        }
        guard let identity = try await runtime.login.identity(subject: p.u, method: p.m) else { return signInExpired(context) }
        guard let pendingResult = try await pending(p.r, request) else { return expiredSignIn(context) }
        let confirmed = try await confirmFactor(form, identity, browserID: bid, context)
        switch confirmed {
        case .success(let added):
            return try await finishSignIn(identity, method: p.m, amr: AMR.adding(added, to: p.a), factorConfirmed: true, pending: pendingResult,
                                          next: p.x, request, context)
        case .failure(let refusal):
            var view = try await factorView(identity, action: "/login/factor", heading: "Confirm it's you",
                                            intro: "Signed in as \(identity.username). Now use your second factor.", next: nil, purpose: "factor",
                                            chrome: nil, csrf: browser.csrfToken(browserID: bid), error: refusal.message)
            view.requestID = context.requestID
            return Responses.html(refusal.status, pages.render(view))
        }
    }

    struct FactorRefusal: Error {
        let status: HTTPResponse.Status
        let message: String
    }

    /// Checks the code or passkey in a form for `identity`; the amr it adds, or why not.
    func confirmFactor(_ form: FormParameters, _ identity: Identity, browserID: String, _ context: PortalContext) async throws -> Result<[String], FactorRefusal> {
        if let credential = form["credential"], !credential.isEmpty {
            switch try await runtime.passkeys.authenticate(credential: credential, person: identity, browserID: browserID, remoteAddress: context.remoteAddress) {
            case .success(let (_, amr)): return .success(amr)
            case .failure(let why):
                return .failure(FactorRefusal(status: .unauthorized, message: "The passkey was not accepted (\(why.reason)). Try again, or use another factor."))
            }
        }
        switch try await runtime.factors.verify(identity, code: form["code"] ?? "", remoteAddress: context.remoteAddress) {
        case .accepted(let amr, _): return .success(amr)
        case .wrong: return .failure(FactorRefusal(status: .unauthorized, message: "That code is not right. Codes change every 30 seconds; each works once."))
        case .lockedOut(let until): return .failure(FactorRefusal(status: .tooManyRequests, message: Self.tooManyAttempts(until: until, now: runtime.clock.now())))
        }
    }

    // MARK: /login/passkey

    func passkeySignIn(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        let form: FormParameters
        switch await checkedForm(&request, context, back: "/login") { case .success(let f): form = f; case .failure(let r): return r }
        guard let bid = request.cookie(browser.browserCookieName) else { return expiredSignIn(context) }
        guard let pendingResult = try await pending(form["req"], request) else { return expiredSignIn(context) }
        let refused = { (why: String) in
            errorPage(.unauthorized, context, heading: "The passkey was not accepted",
                      message: "Signing in with that passkey did not work: \(why).",
                      hint: "Sign in with your username and password instead, or try the passkey again.",
                      backLink: pendingResult.map { "/login?req=\($0.id)" } ?? "/login", backLabel: "Back to sign in")
        }
        switch try await runtime.passkeys.authenticate(credential: form["credential"] ?? "", person: nil, browserID: bid, remoteAddress: context.remoteAddress) {
        case .failure(let why):
            return refused(why.reason)
        case .success(let (factor, amr)):
            guard let (identity, method) = try await runtime.login.locate(subject: factor.userID) else {
                return refused("its account is disabled or no longer exists")
            }
            await runtime.login.remember(account: identity.username, remoteAddress: context.remoteAddress)
            return try await finishSignIn(identity, method: method, amr: amr, factorConfirmed: true, pending: pendingResult,
                                          next: Self.safeNext(form["next"]), request, context)
        }
    }

    // MARK: /webauthn/options

    func webauthnOptions(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        func refuse(_ status: HTTPResponse.Status, _ why: String) -> Response {
            Responses.json(status, "{\"error\":\"\(why)\"}")
        }
        guard let form = try? await request.form(limit: 4096), browser.csrfValid(request, form: form),
              let bid = request.cookie(browser.browserCookieName) else { return refuse(.forbidden, "the form has expired; reload the page") }
        guard let purpose = Passkeys.Purpose(rawValue: form["purpose"] ?? "") else { return refuse(.badRequest, "unknown purpose") }
        var person: Identity?
        switch purpose {
        case .login: person = nil
        case .factor:
            guard let p = browser.pendingSignIn(request, now: runtime.clock.now()),
                  let identity = try await runtime.login.identity(subject: p.u, method: p.m) else { return refuse(.badRequest, "this sign-in has expired") }
            person = identity
        case .register, .stepUp:
            guard let (session, identity) = try await currentSession(request) else { return refuse(.unauthorized, "not signed in") }
            if purpose == .register, try await StepUp(runtime: runtime).needed(session, within: StepUp.recentWindow) {
                return refuse(.forbidden, "confirm a factor first")
            }
            person = identity
        }
        return Responses.json(.ok, try await runtime.passkeys.options(purpose, browserID: bid, person: person))
    }

    // MARK: /step-up

    func stepUpPage(_ request: Request, _ context: PortalContext) async throws -> Response {
        let next = Self.safeNext(request.queryParameters?["next"]) ?? "/"
        guard let (_, identity) = try await currentSession(request) else {
            return Responses.redirect("/login?next=" + FormParameters.escape("/step-up?next=" + next), status: .seeOther)
        }
        guard try await runtime.factors.holdsFactor(userID: identity.subject) else { return Responses.redirect(next, status: .seeOther) }
        let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        let view = try await factorView(identity, action: "/step-up", heading: "Confirm it's still you",
                                        intro: "This page needs a second factor used in the last few minutes.", next: next, purpose: "step-up",
                                        chrome: chrome, csrf: chrome.csrf)
        return Responses.html(.ok, pages.render(view), cookies: cookies)
    }

    func stepUpSubmit(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        let form: FormParameters
        switch await checkedForm(&request, context, back: "/") { case .success(let f): form = f; case .failure(let r): return r }
        let next = Self.safeNext(form["next"]) ?? "/"
        guard let (session, identity) = try await currentSession(request), let bid = request.cookie(browser.browserCookieName) else {
            return Responses.redirect("/login?next=" + FormParameters.escape(next), status: .seeOther)
        }
        switch try await confirmFactor(form, identity, browserID: bid, context) {
        case .success(let added):
            try await runtime.storage.markSessionFactor(hash: session.hash, amr: AMR.adding(added, to: session.amr), at: runtime.clock.now())
            return Responses.redirect(next, status: .seeOther)
        case .failure(let refusal):
            let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
            var view = try await factorView(identity, action: "/step-up", heading: "Confirm it's still you",
                                            intro: "This page needs a second factor used in the last few minutes.", next: next, purpose: "step-up",
                                            chrome: chrome, csrf: chrome.csrf, error: refusal.message)
            view.requestID = context.requestID
            return Responses.html(refusal.status, pages.render(view), cookies: cookies)
        }
    }
}
