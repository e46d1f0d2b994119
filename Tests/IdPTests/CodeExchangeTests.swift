import Foundation
import IdP
import Testing

@Suite("Token endpoint: authorization code grant")
struct CodeExchangeTests {
    @Test func aCodeIsExchangedForTokensWithTheExpectedClaims() async throws {
        try await Harness.with { h async throws in
            let authTime = h.clock.now()
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier, nonce: "n-42"))
            h.clock.advance(5)
            let tokens = try await h.exchange(code, verifier: verifier)

            #expect(tokens.refreshToken.utf8.count == 43)
            #expect(tokens.expiresIn == 60)
            #expect(tokens.scopes == ["openid", "profile", "email", "groups", "offline_access"])

            let id = try await h.claims(tokens.idToken)
            #expect(id["iss"] as? String == Harness.issuer)
            #expect(id["sub"] as? String == h.alice.id)
            #expect(id["aud"] as? String == Harness.cliID)
            let iat = try #require(id["iat"] as? Int)
            #expect(iat == Int(h.clock.now().timeIntervalSince1970))
            #expect(try #require(id["exp"] as? Int) - iat == 60)
            #expect(id["auth_time"] as? Int == Int(authTime.timeIntervalSince1970))
            #expect(id["nonce"] as? String == "n-42")
            #expect(id["at_hash"] as? String == TokenMinter.atHash(tokens.accessToken))
            #expect(id["preferred_username"] as? String == "alice")
            #expect(id["name"] as? String == "Alice Liddell")
            #expect(id["email"] as? String == "alice@example.com")
            #expect(id["email_verified"] as? Bool == true)
            #expect(id["groups"] as? [String] == ["dev", "ops"])
            #expect(try Harness.header(tokens.idToken)["alg"] as? String == "ES256")

            // The access token is for /userinfo only: MAC'd by the portal, not a JWS anyone can verify.
            #expect(tokens.accessToken.hasPrefix(AccessTokenCodec.prefix))
            #expect(throws: JOSEError.self) { try JWS.verify(tokens.accessToken, keys: [:]) }
            let access = try #require(h.provider.minter.accessTokens.open(tokens.accessToken, now: h.clock.now()))
            #expect(access.subject == h.alice.id)
            #expect(access.clientID == Harness.cliID)
            #expect(access.sessionID == tokens.familyID)
            #expect(access.expiresAt - access.issuedAt == 60)

            let family = try #require(try await h.store.family(id: tokens.familyID))
            #expect(family.grant.userID == h.alice.id)
            #expect(try await h.auditEvents(type: "token.issue").count == 1)
        }
    }

    @Test func userinfoAnswersForTheAccessToken() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let json = try await h.provider.userinfo(accessToken: tokens.accessToken)
            let info = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(info["sub"] as? String == h.alice.id)
            #expect(info["groups"] as? [String] == ["dev", "ops"])
            #expect(info["email"] as? String == "alice@example.com")
            // The id_token is not an access token.
            let e = await #expect(throws: OAuthError.self) { _ = try await h.provider.userinfo(accessToken: tokens.idToken) }
            #expect(e?.code == "invalid_token")
            h.clock.advance(61)
            let expired = await #expect(throws: OAuthError.self) { _ = try await h.provider.userinfo(accessToken: tokens.accessToken) }
            #expect(expired?.code == "invalid_token")
        }
    }

    @Test func withoutANonceTheIdTokenHasNone() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn(nonce: nil)
            #expect(try await h.claims(tokens.idToken)["nonce"] == nil)
        }
    }

    @Test func claimsFollowTheGrantedScopes() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn(scope: "openid")
            let id = try await h.claims(tokens.idToken)
            #expect(id["sub"] as? String == h.alice.id)
            #expect(id["groups"] == nil && id["email"] == nil && id["preferred_username"] == nil)
        }
    }

    @Test(arguments: [Caller.web, Caller.webPost])
    func aConfidentialClientAuthenticatesWithBasicOrPost(_ caller: Caller) async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(.web))
            let tokens = try await h.exchange(code, verifier: nil, as: caller)
            #expect(try await h.claims(tokens.idToken)["aud"] as? String == Harness.webID)
        }
    }

    @Test func aCodeStillWorksJustBeforeItExpires() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            h.clock.advance(59)
            _ = try await h.exchange(code, verifier: verifier)
        }
    }

    @Test func aCodeExpiresAfterSixtySeconds() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            h.clock.advance(61)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: verifier) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.activeFamilies(userID: h.alice.id, now: h.clock.now()).isEmpty)
        }
    }

    @Test func aReplayedCodeRevokesWhatTheFirstUseMinted() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            let first = try await h.exchange(code, verifier: verifier)
            h.clock.advance(2)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: verifier) }
            #expect(e?.code == "invalid_grant")

            let family = try #require(try await h.store.family(id: first.familyID))
            #expect(family.revokedAt != nil)
            let refresh = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(refresh?.code == "invalid_grant")
            let info = await #expect(throws: OAuthError.self) { _ = try await h.provider.userinfo(accessToken: first.accessToken) }
            #expect(info?.code == "invalid_token")
            let audit = try await h.auditEvents(type: "code.replay")
            #expect(audit.count == 1)
            #expect(audit.first?.details["family"] == first.familyID)
            #expect(try await h.store.activeFamilies(userID: h.alice.id, now: h.clock.now()).isEmpty)
        }
    }

    @Test func aMissingVerifierIsRefused() async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(verifier: Harness.newVerifier()))
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: nil) }
            #expect(e?.code == "invalid_grant")
        }
    }

    @Test func aWrongVerifierIsRefused() async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(verifier: Harness.newVerifier()))
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: Harness.newVerifier()) }
            #expect(e?.code == "invalid_grant")
            let short = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: "short") }
            #expect(short?.code == "invalid_grant")
            #expect(try await h.store.activeFamilies(userID: h.alice.id, now: h.clock.now()).isEmpty)
        }
    }

    @Test func aVerifierWithoutAChallengeIsRefused() async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(.web))
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: Harness.newVerifier(), as: .web) }
            #expect(e?.code == "invalid_grant")
        }
    }

    @Test func aDifferentRedirectURIAtTheTokenEndpointIsRefused() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            let e = await #expect(throws: OAuthError.self) {
                _ = try await h.exchange(code, verifier: verifier, redirectURI: Harness.cliRedirect + "/")
            }
            #expect(e?.code == "invalid_grant")
        }
    }

    @Test func aCodePresentedByAnotherClientIsRefusedAndNotConsumed() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            let e = await #expect(throws: OAuthError.self) {
                _ = try await h.exchange(code, verifier: verifier, as: .web, redirectURI: Harness.cliRedirect)
            }
            #expect(e?.code == "invalid_grant")
            _ = try await h.exchange(code, verifier: verifier)
        }
    }

    @Test func aClientAuthenticationFailureConsumesNoCode() async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(.web))
            let pairs = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Harness.webRedirect)]
            let e = await #expect(throws: OAuthError.self) {
                _ = try await h.provider.token(FormParameters(pairs), authorizationHeader: Harness.basic(Harness.webID, "wrong"),
                                               remoteAddress: Harness.remote)
            }
            #expect(e?.code == "invalid_client")
            #expect(e?.status == 401)
            _ = try await h.exchange(code, verifier: nil, as: .web)
        }
    }

    @Test func repeatedParametersAreAnInvalidRequestAndConsumeNothing() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            for extra in [[("code", code)], [("grant_type", "authorization_code")], [("code_verifier", verifier)], [("client_id", Harness.cliID)]] {
                let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(code, verifier: verifier, extra: extra) }
                #expect(e?.code == "invalid_request", "repeated \(extra[0].0)")
            }
            _ = try await h.exchange(code, verifier: verifier)
        }
    }

    @Test func unknownTokenParametersAreIgnored() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            _ = try await h.exchange(code, verifier: verifier, extra: [("resource_hint", "x"), ("foo", "bar")])
        }
    }

    @Test func anUnknownCodeOrGrantTypeIsRefused() async throws {
        try await Harness.with { h async throws in
            let e = await #expect(throws: OAuthError.self) { _ = try await h.exchange(Harness.newVerifier(), verifier: Harness.newVerifier()) }
            #expect(e?.code == "invalid_grant")
            let g = await #expect(throws: OAuthError.self) { _ = try await h.token([("grant_type", "password")], as: .cli) }
            #expect(g?.code == "unsupported_grant_type")
            let m = await #expect(throws: OAuthError.self) { _ = try await h.token([], as: .cli) }
            #expect(m?.code == "invalid_request")
        }
    }
}
