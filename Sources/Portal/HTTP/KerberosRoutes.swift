import Foundation
import Hummingbird
import IdP
import Templates

/// SPNEGO on the login page (RFC 4559). With `kerberos:` configured, GET /login answers
/// `401` with `WWW-Authenticate: Negotiate` *and* the password form in the body, so a browser
/// without a ticket (or one that fumbles the first challenge) simply shows the form. A valid
/// `Authorization: Negotiate` token signs the person in with no prompt and carries on exactly
/// like a password login; every other outcome shows the form again with the reason.
extension BrowserRoutes {
    func negotiateLogin(_ kerberos: KerberosAuthenticator, pending pendingResult: PendingAuthorization?, _ request: Request,
                        _ context: PortalContext) async throws -> Response {
        let q = request.queryParameters ?? FormParameters()
        let next = Self.safeNext(q["next"])
        let (bid, setCookie) = browser.browserID(request)
        let cookies = setCookie.map { [$0] } ?? []

        func form(_ status: HTTPResponse.Status, error: String? = nil, challenge: Bool, kerberosLink: String? = nil) async throws -> Response {
            var clientName: String?
            if let p = pendingResult { clientName = try await runtime.provider.clients.client(id: p.request.clientID)?.name }
            var view = LoginView(csrf: browser.csrfToken(browserID: bid), pending: pendingResult?.id, clientName: clientName, error: error, next: next)
            let (flash, clear) = browser.takeFlash(request)
            view.notice = flash?.notice
            let noAdministrator = (try? await runtime.storage.adminExists()) == false
            view.setupPending = noAdministrator && runtime.config.adminGroups.isEmpty
            view.kerberosLink = kerberosLink
            var response = Responses.html(status, pages.render(view), cookies: cookies + clear)
            if challenge { response.headers[.wwwAuthenticate] = "Negotiate" }
            return response
        }

        let authorizations = request.headers[values: .authorization]
        // Just signed out here: no automatic Kerberos until the person asks for it.
        if authorizations.isEmpty, request.cookie(browser.signedOutCookieName) != nil, q["kerberos"] == nil {
            var params = [("kerberos", "1")]
            if let p = pendingResult { params.append(("req", p.id)) } else if let next { params.append(("next", next)) }
            return try await form(.ok, challenge: false, kerberosLink: "/login?" + FormParameters.encode(params))
        }
        guard let authorization = authorizations.first else { return try await form(.unauthorized, challenge: true) }
        // Some other scheme (a client sending Basic everywhere) is not an attempt at Kerberos.
        guard authorization.count >= 9, authorization.prefix(9).lowercased() == "negotiate" else {
            return try await form(.unauthorized, challenge: true)
        }
        let signInAgain = pendingResult.map { "/login?req=\($0.id)" } ?? "/login" + (next.map { "?next=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? "")
        guard authorizations.count == 1 else {
            return errorPage(.badRequest, context, heading: "Bad request", message: "The request carries more than one Authorization header.",
                             backLink: signInAgain, backLabel: "Back to sign in")
        }

        switch try await kerberos.login(authorization: authorization, remoteAddress: context.remoteAddress) {
        case .malformed(let why):
            return errorPage(.badRequest, context, heading: "Bad request", message: "The Kerberos sign-in could not be read: \(why).",
                             hint: "Nothing was changed. Sign in with your password instead.", backLink: signInAgain, backLabel: "Back to sign in")
        case .rejected:
            return try await form(.unauthorized, error: "Your Kerberos ticket was not accepted. Sign in with your username and password instead.",
                                  challenge: true)
        case .realmNotAllowed(let principal, let realm):
            return try await form(.forbidden, error: "Your Kerberos identity \(principal) is not accepted here: the realm \(realm) is not allowed. Sign in with your username and password instead.",
                                  challenge: false)
        case .unknownPrincipal(let principal, let username):
            let who = username.map { " (user '\($0)')" } ?? ""
            return try await form(.forbidden, error: "Your Kerberos identity \(principal)\(who) has no account here. Ask your administrator, or sign in with a username and password.",
                                  challenge: false)
        case .disabled(let principal, _):
            return try await form(.forbidden, error: "The account for \(principal) is disabled.", challenge: false)
        case .lockedOut(let until):
            return try await form(.tooManyRequests, error: Self.tooManyAttempts(until: until, now: runtime.clock.now()), challenge: false)
        case .unavailable:
            return try await form(.serviceUnavailable, error: "The account directory cannot be reached right now. Nothing was changed; try again in a minute.",
                                  challenge: false)
        case .success(let identity, _, let mutualToken):
            await runtime.login.remember(account: identity.username, remoteAddress: context.remoteAddress)
            // With a second factor held (and Kerberos one factor), on to /login/factor; otherwise signed in.
            var response = try await afterFirstFactor(identity, method: kerberos.method, pending: pendingResult, next: next, request, context,
                                                      cookies: cookies)
            // Mutual authentication: the client checks this token proves the server holds the service key.
            if let mutualToken { response.headers[.wwwAuthenticate] = "Negotiate " + mutualToken }
            return response
        }
    }
}
