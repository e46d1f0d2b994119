import Foundation
import Hummingbird
import IdP
import Templates

/// Signing out: the portal's own sign-out (which asks what to end when there is a choice) and
/// OpenID Connect RP-Initiated Logout (`/end-session`).
struct SessionRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?
    var signout: Signout { Signout(provider: runtime.provider) }

    func register(_ router: Router<PortalContext>) {
        router.post("/logout") { request, context in try await logout(request, context) }
        router.get("/end-session") { request, context in
            guard let p = request.queryParameters else { return refused(context, "The sign-out link is malformed.") }
            return try await endSession(p, request, context)
        }
        router.post("/end-session") { request, context in
            var request = request
            guard let p = try? await request.form(limit: runtime.config.maxBodyBytes) else { return refused(context, "The sign-out request is malformed.") }
            return try await endSession(p, request, context)
        }
    }

    func refused(_ context: PortalContext, _ why: String) -> Response {
        Responses.html(.badRequest, pages.render(ErrorView(heading: "This sign-out request is not valid", message: why,
                                                           hint: "Nothing was signed out. Sign out from the portal's own page instead.",
                                                           requestID: context.requestID)))
    }

    // MARK: The portal's sign-out

    /// `end=browser|all` signs out; without it, the person is asked when this browser started kubectl
    /// sessions (otherwise there is nothing to choose, and "this browser" is what happens).
    func logout(_ request: Request, _ context: PortalContext) async throws -> Response {
        var request = request
        guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and sign out again.",
                                                                     requestID: context.requestID)))
        }
        // The stored session, live or idled out, found without asking the directory: signing out
        // works when the session has expired or LDAP is down, and still ends what it started.
        guard let c = request.cookie(browser.sessionCookieName), let s = try await runtime.login.storedSession(cookie: c) else {
            return signedOut(request)
        }
        let live = try? await runtime.login.current(s)
        var scope = SignoutScope(rawValue: form["end"] ?? "")
        if scope == nil {
            let kubectl = try await kubectlSessions(of: s)
            if kubectl == 0 || live == nil { scope = .browser } else if let (_, identity) = live {
                let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
                let view = Self.choice(kubectl: kubectl).view(chrome: chrome, action: "/logout", hidden: [], cancel: "/")
                return Responses.html(.ok, pages.render(view), cookies: cookies)
            }
        }
        try await end(s, actor: live?.1.username ?? "", scope: scope ?? .browser, context, via: "portal")
        return signedOut(request)
    }

    /// The question, with "this browser" chosen.
    static func choice(kubectl: Int, intro: [String] = []) -> Confirmation {
        let sessions = kubectl == 1 ? "1 kubectl session was" : "\(kubectl) kubectl sessions were"
        return Confirmation(heading: "Sign out?", consequences: intro + [
            "\(sessions) started from this browser (the kubectl page or a kubeconfig download).",
        ], submit: "Sign out", choice: .init(legend: "What to end", options: [
            .init(name: "end", value: SignoutScope.browser.rawValue, label: "This browser",
                  hint: "kubectl keeps working until those sessions end on their own.", selected: true),
            .init(name: "end", value: SignoutScope.all.rawValue, label: "This browser and every kubectl session started from it",
                  hint: "kubectl on those machines stops within a minute and asks for a new sign-in."),
        ]))
    }

    func kubectlSessions(of s: LoginSession) async throws -> Int {
        let now = runtime.clock.now()
        return try await runtime.storage.families(sessionID: s.sid).filter {
            $0.revokedAt == nil && $0.expiresAt > now && runtime.provider.kubernetesClients.contains($0.grant.clientID)
        }.count
    }

    func end(_ s: LoginSession, actor: String, scope: SignoutScope, _ context: PortalContext, via: String,
             except: String? = nil) async throws {
        let ended = try await signout.endBrowserSession(s, scope: scope, reason: "signed out", except: except)
        await runtime.provider.auditor.record("logout", actor: actor, subject: s.userID, clientID: except ?? "",
                                              remoteAddress: context.remoteAddress,
                                              details: ["ended": scope.rawValue, "families": String(ended.families), "via": via, "session": s.sid])
    }

    /// A one-time secret not yet viewed is not for whoever signs in next on this browser.
    func signedOut(_ request: Request) -> Response {
        browser.done(request, "/login", notice: "You have signed out.",
                     cookies: [browser.clearSessionCookie(), Reveals(runtime: runtime, browser: browser).clearCookie(), browser.signedOutCookie()])
    }

    // MARK: RP-Initiated Logout 1.0

    func endSession(_ p: FormParameters, _ request: Request, _ context: PortalContext) async throws -> Response {
        let req: EndSessionRequest
        switch try await runtime.provider.checkEndSession(p) {
        case .refused(let why): return refused(context, why)
        case .valid(let r): req = r
        }
        let current: (LoginSession, Identity)?
        if let c = request.cookie(browser.sessionCookieName) { current = try await runtime.login.session(cookie: c) } else { current = nil }
        // A verified hint for the person signed in here (or nobody signed in), and nowhere unregistered
        // to go afterwards: sign out without asking. Anything else is a question for the person.
        if let hint = req.hint, req.noRedirectReason == nil, current == nil || current?.1.subject == hint.subject {
            if let (s, identity) = current {
                try await end(s, actor: identity.username, scope: .browser, context, via: "end_session", except: hint.clientID)
            }
            // The RP's own families from the session it names, wherever that session is (audited: the
            // hint's client asked, for its subject).
            if let sid = hint.sessionID, sid != current?.0.sid {
                if let other = try await runtime.storage.session(sid: sid), other.userID == hint.subject {
                    try await end(other, actor: "", scope: .browser, context, via: "end_session", except: hint.clientID)
                } else {
                    let theirs = try await runtime.storage.families(sessionID: sid).filter { $0.grant.userID == hint.subject && $0.grant.clientID == hint.clientID }
                    var ended = 0
                    for f in theirs where f.revokedAt == nil { if try await signout.endFamily(f, reason: "signed out") { ended += 1 } }
                    await runtime.provider.auditor.record("logout", subject: hint.subject, clientID: hint.clientID, remoteAddress: context.remoteAddress,
                                                          details: ["ended": "client", "families": String(ended), "via": "end_session", "session": sid])
                }
            }
            let cookies = [browser.clearSessionCookie(), Reveals(runtime: runtime, browser: browser).clearCookie(), browser.signedOutCookie()]
            if let target = req.redirect { return Responses.redirect(target, status: .seeOther, cookies: cookies) }
            return browser.done(request, "/login", notice: "You have signed out\(req.clientName.map { " of the portal and \($0)" } ?? "").", cookies: cookies)
        }
        guard let (s, identity) = current else {
            return Responses.html(.ok, pages.render(ErrorView(heading: "You are signed out", message: "This browser is not signed in to the portal.",
                                                              hint: req.noRedirectReason, requestID: nil, backLink: "/login", backLabel: "Sign in")))
        }
        // No proof of who asked: ask the person, and never send them anywhere afterwards.
        var intro = ["\(req.clientName.map { "\($0) asks" } ?? "An application asks") you to sign out of the portal as \(identity.username)."]
        if let why = req.noRedirectReason { intro.append(why) }
        let kubectl = try await kubectlSessions(of: s)
        let confirmation = kubectl == 0 ? Confirmation(heading: "Sign out?", consequences: intro, submit: "Sign out", choice: .init(legend: "What to end", options: [
            .init(name: "end", value: SignoutScope.browser.rawValue, label: "This browser", selected: true),
        ])) : Self.choice(kubectl: kubectl, intro: intro)
        let (chrome, cookies) = browser.chrome(request, identity, isAdmin: isAdmin(identity, runtime), section: .none)
        return Responses.html(.ok, pages.render(confirmation.view(chrome: chrome, action: "/logout", hidden: [], cancel: "/")), cookies: cookies)
    }
}

extension Runtime {
    /// Before a sign-in: the session this browser had ends. The same person's (idled out, or a sign-in
    /// an application asked to repeat) is continued — its `sid` is returned for the new session, so
    /// what it started stays reachable by sign-out and back-channel logout; another person's is
    /// ended, with what it started.
    func retireSession(oldCookie: String?, for userID: String) async -> String? {
        guard let c = oldCookie, let old = try? await login.storedSession(cookie: c) else { return nil }
        do {
            if old.userID == userID {
                try await storage.deleteSession(hash: old.hash)
                return old.sid
            }
            try await Signout(provider: provider).endBrowserSession(old, scope: .browser, reason: "another person signed in on this browser")
        } catch {
            logger.error("could not retire the browser's previous session", metadata: ["error": "\(error)"])
        }
        return nil
    }
}
