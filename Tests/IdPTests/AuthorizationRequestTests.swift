import Foundation
import IdP
import Testing

@Suite("Authorization endpoint: request validation")
struct AuthorizationRequestTests {
    @Test func aCompleteRequestIsValid() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let check = try await h.provider.checkAuthorization(h.authorizationParameters(verifier: verifier))
            guard case .valid(let request) = check else { Issue.record("refused: \(check)"); return }
            #expect(request.clientID == Harness.cliID)
            #expect(request.redirectURI == Harness.cliRedirect)
            #expect(request.scopes == ["openid", "profile", "email", "groups", "offline_access"])
            #expect(request.codeChallenge == PKCE.s256(verifier))
            #expect(request.nonce == "nonce-n-0S6_WzA2Mj")
            #expect(request.state == "af0ifjsldkj")
        }
    }

    @Test func theCodeRedirectCarriesCodeStateAndIssuer() async throws {
        try await Harness.with { h async throws in
            let code = try await h.authorize(h.authorizationParameters(verifier: Harness.newVerifier()))
            #expect(code.utf8.count == 43, "codes carry 256 bits")
            let stored = try #require(try await h.store.code(hash: Secrets.sha256Hex(code)))
            #expect(stored.grant.userID == h.alice.id)
            #expect(stored.expiresAt == h.clock.now() + 60)
        }
    }

    static let registeredVariants = [
        "http://127.0.0.1:8000/callback/",              // trailing slash
        "http://127.0.0.1:8000/Callback",               // path case
        "HTTP://127.0.0.1:8000/callback",               // scheme case
        "http://127.0.0.1:8000/callback?next=/admin",   // extra query
        "http://127.0.0.1:8000/callback#fragment",      // fragment
        "http://127.0.0.1:8000/callback/../callback",   // dot segments
        "http://127.0.0.1:8001/callback",               // other port
        "http://localhost:8000/callback",               // other spelling of loopback
        "https://evil.example.com/callback",            // other host
        "http://127.0.0.1:8000/callback.evil.example",  // prefix match
        "javascript:alert(document.cookie)//",          // script
        "",                                             // empty
    ]

    @Test(arguments: registeredVariants)
    func aRedirectURIThatIsNotExactlyRegisteredIsShownNeverRedirected(_ uri: String) async throws {
        try await Harness.with { h async throws in
            let check = try await h.provider.checkAuthorization(h.authorizationParameters(redirectURI: uri, verifier: Harness.newVerifier()))
            guard case .showError(let error) = check else { Issue.record("expected .showError for \(uri), got \(check)"); return }
            #expect(error.code == "invalid_request")
        }
    }

    @Test func aConfidentialClientsRedirectURIVariantIsRefusedToo() async throws {
        try await Harness.with { h async throws in
            for uri in ["https://APP.example.com/callback", "https://app.example.com/callback/", "https://app.example.com:443/callback"] {
                let check = try await h.provider.checkAuthorization(h.authorizationParameters(.web, redirectURI: uri))
                guard case .showError = check else { Issue.record("expected .showError for \(uri), got \(check)"); continue }
            }
        }
    }

    @Test func anUnknownClientIsShownNeverRedirected() async throws {
        try await Harness.with { h async throws in
            var pairs = h.authorizationParameters(verifier: Harness.newVerifier()).pairs.filter { $0.0 != "client_id" }
            pairs.append(("client_id", "intruder"))
            guard case .showError(let e) = try await h.provider.checkAuthorization(FormParameters(pairs)) else {
                Issue.record("expected .showError"); return
            }
            #expect(e.code == "invalid_request")
        }
    }

    @Test func aRepeatedClientIDIsShownAsInvalidRequest() async throws {
        try await Harness.with { h async throws in
            let p = h.authorizationParameters(verifier: Harness.newVerifier(), extra: [("client_id", Harness.cliID)])
            guard case .showError(let e) = try await h.provider.checkAuthorization(p) else { Issue.record("expected .showError"); return }
            #expect(e.code == "invalid_request")
        }
    }

    @Test func aRepeatedScopeIsRedirectedAsInvalidRequest() async throws {
        try await Harness.with { h async throws in
            let p = h.authorizationParameters(verifier: Harness.newVerifier(), extra: [("scope", "openid")])
            guard case .redirectError(let e, let uri, let state) = try await h.provider.checkAuthorization(p) else {
                Issue.record("expected .redirectError"); return
            }
            #expect(e.code == "invalid_request")
            #expect(uri == Harness.cliRedirect)
            #expect(state == "af0ifjsldkj")
        }
    }

    @Test func unknownParametersAreIgnored() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let p = h.authorizationParameters(verifier: verifier, extra: [("ui_locales", "de"), ("x-custom", "1"), ("login_hint", "alice")])
            let code = try await h.authorize(p)
            #expect(try await h.exchange(code, verifier: verifier).refreshToken.utf8.count == 43)
        }
    }

    @Test func thePlainChallengeMethodIsRefused() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let plain = FormParameters(h.authorizationParameters().pairs + [("code_challenge", verifier), ("code_challenge_method", "plain")])
            guard case .redirectError(let e, _, _) = try await h.provider.checkAuthorization(plain) else { Issue.record("plain accepted"); return }
            #expect(e.code == "invalid_request")
            // A challenge without a method means plain (RFC 7636 §4.3): refused too.
            let implicit = FormParameters(h.authorizationParameters().pairs + [("code_challenge", PKCE.s256(verifier))])
            guard case .redirectError(let e2, _, _) = try await h.provider.checkAuthorization(implicit) else {
                Issue.record("challenge without method accepted"); return
            }
            #expect(e2.code == "invalid_request")
        }
    }

    @Test func aChallengeMethodWithoutChallengeIsRefused() async throws {
        try await Harness.with { h async throws in
            let p = FormParameters(h.authorizationParameters(.web).pairs + [("code_challenge_method", "S256")])
            guard case .redirectError(let e, _, _) = try await h.provider.checkAuthorization(p) else { Issue.record("accepted"); return }
            #expect(e.code == "invalid_request")
        }
    }

    @Test func aMalformedChallengeIsRefused() async throws {
        try await Harness.with { h async throws in
            let p = FormParameters(h.authorizationParameters().pairs + [("code_challenge", "too-short"), ("code_challenge_method", "S256")])
            guard case .redirectError(let e, _, _) = try await h.provider.checkAuthorization(p) else { Issue.record("accepted"); return }
            #expect(e.code == "invalid_request")
        }
    }

    @Test func aPublicClientWithoutPKCEIsRefused() async throws {
        try await Harness.with { h async throws in
            guard case .redirectError(let e, let uri, _) = try await h.provider.checkAuthorization(h.authorizationParameters(.cli)) else {
                Issue.record("public client without PKCE accepted"); return
            }
            #expect(e.code == "invalid_request")
            #expect(uri == Harness.cliRedirect)
        }
    }

    @Test func aConfidentialClientMayOmitPKCE() async throws {
        try await Harness.with { h async throws in
            guard case .valid(let r) = try await h.provider.checkAuthorization(h.authorizationParameters(.web)) else {
                Issue.record("refused"); return
            }
            #expect(r.codeChallenge == nil)
        }
    }

    @Test func theOpenIDScopeIsRequired() async throws {
        try await Harness.with { h async throws in
            let p = h.authorizationParameters(scope: "profile email", verifier: Harness.newVerifier())
            guard case .redirectError(let e, _, _) = try await h.provider.checkAuthorization(p) else { Issue.record("accepted"); return }
            #expect(e.code == "invalid_scope")
        }
    }
}
