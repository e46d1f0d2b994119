import Foundation
@testable import IdP
import Testing

/// Issue 15 in the protocol core: `sid`, RFC 7009, RFC 7662, RP-initiated logout checks,
/// back-channel logout tokens and their delivery.
@Suite struct SessionEnding {
    static let web = Basic(Harness.webID, Harness.webSecret)
    struct Basic { let header: String; init(_ id: String, _ secret: String) { header = Harness.basic(id, secret) } }

    /// The confidential client again, now with logout settings.
    static func registerWebLogout(_ h: Harness, backchannel: String = "https://app.example.com/backchannel") async throws {
        var web = try #require(try await h.store.client(id: Harness.webID))
        _ = try await h.store.deleteClient(id: web.id)
        web.postLogoutRedirectURIs = ["https://app.example.com/signed-out"]
        web.backchannelLogoutURI = backchannel
        try await h.store.createClient(web)
    }

    func revoke(_ h: Harness, _ token: String, as auth: String? = web.header, clientID: String? = nil) async throws(OAuthError) {
        var pairs = [("token", token)]
        if let clientID { pairs.append(("client_id", clientID)) }
        try await h.provider.revoke(FormParameters(pairs), authorizationHeader: auth, remoteAddress: Harness.remote)
    }

    func introspect(_ h: Harness, _ token: String, as auth: String? = web.header, clientID: String? = nil) async throws(OAuthError) -> [String: Any] {
        var pairs = [("token", token)]
        if let clientID { pairs.append(("client_id", clientID)) }
        let json = try await h.provider.introspect(FormParameters(pairs), authorizationHeader: auth, remoteAddress: Harness.remote)
        return (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func idTokensNameTheBrowserSessionAndRefreshesKeepIt() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn(.web)
            #expect(try await h.claims(first.idToken)["sid"] as? String == "browser-session-1")
            let next = try await h.refresh(first.refreshToken, as: .web)
            #expect(try await h.claims(next.idToken)["sid"] as? String == "browser-session-1")
        }
    }

    @Test func aClientRevokesItsOwnTokensOnlyAndLearnsNothingOfOthers() async throws {
        try await Harness.with { h async throws in
            let mine = try await h.signIn(.web), theirs = try await h.signIn(.cli)
            try await revoke(h, theirs.refreshToken)                       // another client's: a silent no-op
            try await revoke(h, "not-a-token-at-all")                      // unknown: 200 too
            _ = try await h.refresh(theirs.refreshToken, as: .cli)         // still alive
            try await revoke(h, mine.refreshToken)
            do { _ = try await h.refresh(mine.refreshToken, as: .web); Issue.record("a revoked token refreshed") } catch let error as OAuthError {
                #expect(error.code == "invalid_grant")
                #expect(error.errorDescription.contains("ended"), "says why: \(error.errorDescription)")
            }
            await #expect(throws: OAuthError.self) { try await h.provider.userinfo(accessToken: mine.accessToken) }
            // Wrong secret: invalid_client, and nothing is revoked.
            let other = try await h.signIn(.web)
            do { try await revoke(h, other.refreshToken, as: Harness.basic(Harness.webID, "wrong-secret")); Issue.record("no client authentication") } catch let error as OAuthError {
                #expect(error.code == "invalid_client")
            }
            _ = try await h.refresh(other.refreshToken, as: .web)
            // An access token revokes its family; a public client revokes its own with client_id alone.
            let again = try await h.signIn(.web)
            try await revoke(h, again.accessToken)
            await #expect(throws: OAuthError.self) { try await h.refresh(again.refreshToken, as: .web) }
            let cli = try await h.signIn(.cli)
            try await revoke(h, cli.refreshToken, as: nil, clientID: Harness.cliID)
            await #expect(throws: OAuthError.self) { try await h.refresh(cli.refreshToken, as: .cli) }
        }
    }

    @Test func introspectionIsForConfidentialClientsAndShowsOnlyTheirOwnTokens() async throws {
        try await Harness.with { h async throws in
            let mine = try await h.signIn(.web), theirs = try await h.signIn(.cli)
            let active = try await introspect(h, mine.refreshToken)
            #expect(active["active"] as? Bool == true)
            #expect(active["client_id"] as? String == Harness.webID)
            #expect(active["sub"] as? String == h.alice.id)
            #expect(active["username"] as? String == "alice")
            #expect(active["token_type"] as? String == "refresh_token")
            #expect(active["sid"] as? String == "browser-session-1")
            let access = try await introspect(h, mine.accessToken)
            #expect(access["active"] as? Bool == true && access["token_type"] as? String == "Bearer")
            #expect(try await introspect(h, theirs.refreshToken).count == 1, "another client's token: {\"active\":false} and nothing more")
            #expect(try await introspect(h, "garbage")["active"] as? Bool == false)
            do { _ = try await introspect(h, theirs.refreshToken, as: nil, clientID: Harness.cliID); Issue.record("a public client introspected") } catch let error as OAuthError {
                #expect(error.code == "invalid_client")
            }
            try await revoke(h, mine.refreshToken)
            #expect(try await introspect(h, mine.refreshToken).count == 1)
            #expect(try await introspect(h, mine.accessToken).count == 1, "its access token is inactive too")
            // A used token (outside the grace window) is inactive; its successor is active.
            let fresh = try await h.signIn(.web)
            let next = try await h.refresh(fresh.refreshToken, as: .web)
            h.clock.advance(60)
            #expect(try await introspect(h, fresh.refreshToken)["active"] as? Bool == false)
            #expect(try await introspect(h, next.refreshToken)["active"] as? Bool == true)
        }
    }

    @Test func endSessionRedirectsOnlyForAVerifiedHintAndARegisteredAddress() async throws {
        try await Harness.with { h async throws in
            try await Self.registerWebLogout(h)
            let t = try await h.signIn(.web)
            h.clock.advance(3600)  // an expired hint is still a hint
            func check(_ pairs: [(String, String)]) async throws -> EndSessionCheck { try await h.provider.checkEndSession(FormParameters(pairs)) }
            guard case .valid(let ok) = try await check([("id_token_hint", t.idToken), ("post_logout_redirect_uri", "https://app.example.com/signed-out"),
                                                         ("state", "s 1")]) else { Issue.record("refused"); return }
            #expect(ok.redirect == "https://app.example.com/signed-out?state=s%201")
            #expect(ok.hint == .init(subject: h.alice.id, sessionID: "browser-session-1", clientID: Harness.webID))
            guard case .valid(let unregistered) = try await check([("id_token_hint", t.idToken), ("post_logout_redirect_uri", "https://evil.example/")])
            else { Issue.record("refused"); return }
            #expect(unregistered.redirect == nil && unregistered.noRedirectReason != nil)
            guard case .valid(let noHint) = try await check([("post_logout_redirect_uri", "https://app.example.com/signed-out")]) else { return }
            #expect(noHint.redirect == nil && noHint.hint == nil)
            var parts = t.idToken.split(separator: ".").map(String.init)
            parts[2] = String(parts[2].reversed())
            guard case .refused = try await check([("id_token_hint", parts.joined(separator: "."))]) else { Issue.record("a tampered hint passed"); return }
            guard case .refused = try await check([("id_token_hint", t.idToken), ("client_id", Harness.cliID)]) else {
                Issue.record("a client_id contradicting the hint passed"); return
            }
        }
    }

    final class Recorder: LogoutTransport, @unchecked Sendable {
        let lock = NSLock()
        var status: Int
        var posts: [(String, String)] = []
        init(status: Int) { self.status = status }
        func post(_ url: String, form: String, timeout: TimeInterval) async throws -> Int {
            lock.withLock { posts.append((url, form)) }
            return lock.withLock { status }
        }
    }

    @Test func endingABrowserSessionTellsItsApplicationsWithASignedLogoutToken() async throws {
        try await Harness.with { h async throws in
            try await Self.registerWebLogout(h)
            let t = try await h.signIn(.web)
            let session = LoginSession(hash: "gone", sid: "browser-session-1", userID: h.alice.id, authTime: h.clock.now(), authMethod: "password",
                                       createdAt: h.clock.now(), expiresAt: h.clock.now() + 3600)
            let ended = try await Signout(provider: h.provider).endBrowserSession(session, scope: .browser, reason: "signed out")
            #expect(ended.families == 1)
            await #expect(throws: OAuthError.self) { try await h.refresh(t.refreshToken, as: .web) }

            let failing = Recorder(status: 503)
            let sender = BackchannelSender(provider: h.provider, transport: failing, logger: Harness.logger)
            #expect(await sender.deliverDue() == 0)
            #expect(failing.posts.count == 1)
            #expect(await sender.deliverDue() == 0 && failing.posts.count == 1, "not before its backoff")
            h.clock.advance(7)  // past the claim: its timeout (5 s) and the first backoff (1 s)
            let recorder = Recorder(status: 200)
            let retry = BackchannelSender(provider: h.provider, transport: recorder, logger: Harness.logger)
            #expect(await retry.deliverDue() == 1)
            let (url, form) = try #require(recorder.posts.first)
            #expect(url == "https://app.example.com/backchannel")
            let token = try #require(FormParameters.parse(form)?["logout_token"])
            let claims = try await h.claims(token)
            #expect(try Harness.header(token)["typ"] as? String == "logout+jwt")
            #expect(claims["iss"] as? String == Harness.issuer && claims["aud"] as? String == Harness.webID)
            #expect(claims["sub"] as? String == h.alice.id && claims["sid"] as? String == "browser-session-1")
            #expect((claims["events"] as? [String: Any])?[BackchannelSender.event] != nil)
            #expect(claims["nonce"] == nil && claims["jti"] != nil)
            #expect(await retry.deliverDue() == 0, "delivered once")
        }
    }

    @Test func aClientThatRefusesTheTokenIsNotAskedAgain() async throws {
        try await Harness.with { h async throws in
            try await Self.registerWebLogout(h)
            _ = try await h.signIn(.web)
            let session = LoginSession(hash: "gone", sid: "browser-session-1", userID: h.alice.id, authTime: h.clock.now(), authMethod: "password",
                                       createdAt: h.clock.now(), expiresAt: h.clock.now() + 3600)
            try await Signout(provider: h.provider).endBrowserSession(session, scope: .browser, reason: "signed out")
            let refusing = Recorder(status: 400)
            let sender = BackchannelSender(provider: h.provider, transport: refusing, logger: Harness.logger)
            _ = await sender.deliverDue()
            h.clock.advance(120)
            _ = await sender.deliverDue()
            #expect(refusing.posts.count == 1)
            let failures = try await h.store.auditEvents(AuditQuery(type: "logout.backchannel"))
            #expect(failures.count == 1 && failures.first?.success == false)
        }
    }
}

@Suite struct UserCodes {
    @Test func codesAreEightConsonantsAndTypingIsForgiving() {
        for _ in 0..<200 {
            let c = UserCode.make(SystemRandom())
            #expect(c.count == 8 && c.allSatisfy { "BCDFGHJKLMNPQRSTVWXZ".contains($0) }, "\(c)")
            #expect(UserCode.normalize(UserCode.display(c).lowercased()) == c)
        }
        #expect(UserCode.normalize("bcdf ghjk") == "BCDFGHJK")
        #expect(UserCode.normalize("BCDF-GHJA") == nil, "a vowel is never part of a code")
        #expect(UserCode.normalize("BCDF-GHJ") == nil)
        #expect(UserCode.normalize("BCDF-GHJK-L") == nil)
        #expect(UserCode.display("BCDFGHJK") == "BCDF-GHJK")
    }
}
