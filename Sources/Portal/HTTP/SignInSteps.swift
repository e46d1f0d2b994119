import Foundation
import Hummingbird
import IdP
import Templates

/// A sign-in between its first factor (password, Kerberos) and its second: who, how, and where it
/// was going, in a cookie signed for this browser, good for five minutes. Nothing is signed in yet.
struct PendingSignIn: Codable, Sendable {
    /// subject, username, primary method, the primary login's amr, pending authorization, next page.
    var u, n, m: String
    var a: [String]
    var r: String?
    var x: String?
}

extension Browser {
    var pendingSignInCookieName: String { secure ? "__Host-portal_signin" : "portal_signin" }
    static let pendingSignInLifetime: TimeInterval = 300

    func pendingSignInCookie(_ p: PendingSignIn, browserID: String, now: Date) -> String {
        let payload = Base64URL.encode((try? JSONEncoder().encode(p)) ?? Data())
        let issued = String(Int(now.timeIntervalSince1970))
        let mac = Secrets.hmac(key, "signin\u{0}" + browserID + "\u{0}" + issued + "\u{0}" + payload)
        return cookie(pendingSignInCookieName, issued + "." + payload + "." + mac, maxAge: Int(Self.pendingSignInLifetime))
    }

    func pendingSignIn(_ request: Request, now: Date) -> PendingSignIn? {
        guard let raw = request.cookie(pendingSignInCookieName), raw.utf8.count <= 4096, let bid = request.cookie(browserCookieName) else { return nil }
        let parts = raw.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let issued = TimeInterval(parts[0]), now.timeIntervalSince1970 - issued <= Self.pendingSignInLifetime,
              now.timeIntervalSince1970 >= issued - 5,
              Secrets.constantTimeEqual(String(parts[2]), Secrets.hmac(key, "signin\u{0}" + bid + "\u{0}" + parts[0] + "\u{0}" + parts[1])),
              let data = Base64URL.decode(String(parts[1]))
        else { return nil }
        return try? JSONDecoder().decode(PendingSignIn.self, from: Data(data))
    }

    func clearPendingSignInCookie() -> String { cookie(pendingSignInCookieName, "", maxAge: 0) }
}

/// Whether a signed-in person may get tokens under the `mfa:` policy.
struct MFAGate {
    let runtime: Runtime
    func verdict(_ session: LoginSession, _ identity: Identity) async throws -> MFAVerdict {
        try await runtime.config.mfa.verdict(identity, isAdmin: isAdmin(identity, runtime), amr: session.amr, store: runtime.storage,
                                             now: runtime.clock.now())
    }

    static let blockedHeading = "A second factor is required"
    static let blockedMessage = "Your administrator requires a second factor (a passkey or an authenticator app) for your account before kubectl or any application can use it."
    static let blockedHint = "Add one on your second factors page, then sign in again with it."

    /// The one 403 page for everything refused for lack of a required factor (tokens, kubeconfigs, device approvals, credentials).
    static func refusal(_ pages: Pages, requestID: String?, cookies: [String] = []) -> Response {
        Responses.html(.forbidden, pages.render(ErrorView(heading: blockedHeading, message: blockedMessage, hint: blockedHint, requestID: requestID,
                                                          backLink: "/account/factors", backLabel: "Add a second factor")), cookies: cookies)
    }
}

/// Step-up: when a session must confirm a factor (again) before a sensitive page.
struct StepUp {
    let runtime: Runtime
    /// Removing or adding factors, new recovery codes: a factor confirmed in this session within five minutes.
    static let recentWindow: TimeInterval = 300

    /// True when the person holds a factor and this session has not confirmed one within `within`.
    func needed(_ session: LoginSession, within: TimeInterval) async throws -> Bool {
        if let at = session.factorAt, runtime.clock.now().timeIntervalSince(at) <= within { return false }
        return try await runtime.factors.holdsFactor(userID: session.userID)
    }
}

extension BrowserRoutes {
    /// After the first factor: on to the second step when the person holds a factor (and Kerberos does not
    /// satisfy the policy by itself), otherwise signed in.
    func afterFirstFactor(_ identity: Identity, method: String, pending: PendingAuthorization?, next: String?, _ request: Request,
                          _ context: PortalContext, cookies: [String] = []) async throws -> Response {
        let policy = runtime.config.mfa
        let amr = AMR.primary(method: method, kerberosSatisfies: policy.kerberosSatisfies)
        let satisfied = method == "kerberos" && policy.kerberosSatisfies
        if !satisfied, try await runtime.factors.holdsFactor(userID: identity.subject) {
            let (bid, setCookie) = browser.browserID(request)
            let p = PendingSignIn(u: identity.subject, n: identity.username, m: method, a: amr, r: pending?.id, x: next)
            return Responses.redirect("/login/factor", status: .seeOther,
                                      cookies: cookies + (setCookie.map { [$0] } ?? []) + [browser.pendingSignInCookie(p, browserID: bid, now: runtime.clock.now())])
        }
        return try await finishSignIn(identity, method: method, amr: amr, factorConfirmed: false, pending: pending, next: next,
                                      request, context, cookies: cookies)
    }

    /// Starts the browser session and carries on where the sign-in was going: the client (if the policy
    /// allows tokens), the page asked for, or enrollment when a factor is required and missing.
    func finishSignIn(_ identity: Identity, method: String, amr: [String], factorConfirmed: Bool, pending: PendingAuthorization?,
                      next: String?, _ request: Request, _ context: PortalContext, cookies: [String] = []) async throws -> Response {
        let continued = await runtime.retireSession(oldCookie: request.cookie(browser.sessionCookieName), for: identity.subject)
        let (cookie, session) = try await runtime.login.startSession(identity: identity, method: method, remoteAddress: context.remoteAddress,
                                                                     userAgent: request.headers[.userAgent] ?? "", sid: continued, amr: amr,
                                                                     factorConfirmed: factorConfirmed)
        // A new browser id at sign-in: CSRF tokens seen before it (by anyone) are worthless after it.
        let fresh = browser.freshBrowser()
        let setCookie = cookies + [browser.sessionCookie(cookie), fresh.setCookie, browser.clearSignedOutCookie(), browser.clearPendingSignInCookie()]
        let verdict = try await MFAGate(runtime: runtime).verdict(session, identity)
        if let p = pending {
            try await runtime.storage.deletePendingAuthorization(id: p.id)
            if verdict == .blocked { return mfaRequiredPage(context, cookies: setCookie) }
            let location = try await provider.issueCode(for: p.request, session: session, remoteAddress: context.remoteAddress)
            return Responses.redirect(location, status: .seeOther, cookies: setCookie)
        }
        switch verdict {
        case .ok:
            return Responses.redirect(next ?? "/", status: .seeOther, cookies: setCookie)
        case .grace(let until):
            return browser.done(request, next ?? "/", notice: "Your administrator requires a second factor for your account: add a passkey or an authenticator app before \(AdminPages.date(until)) (Second factors, on the home page).",
                                cookies: setCookie, browserID: fresh.id)
        case .blocked:
            return browser.done(request, "/account/factors", notice: MFAGate.blockedMessage + " Add one here to continue.", cookies: setCookie, browserID: fresh.id)
        }
    }

    func mfaRequiredPage(_ context: PortalContext, cookies: [String] = []) -> Response {
        MFAGate.refusal(pages, requestID: context.requestID, cookies: cookies)
    }
}
