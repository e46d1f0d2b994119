import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

@Suite struct ClientAuthentication {
    /// Stock kubectl (oidc-login / the built-in provider) sends Basic base64("kubernetes:").
    @Test func kubectl_basic_with_an_empty_secret_works_for_the_public_client() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            let basic: HTTPFields = [.authorization: "Basic " + Data("kubernetes:".utf8).base64EncodedString()]
            let r = try await client.token([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", req.redirectURI),
                                            ("code_verifier", req.verifier!)], headers: basic)
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            let refresh = try #require(try r.json()["refresh_token"] as? String)

            let again = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh)], headers: basic)
            #expect(again.status == .ok)
            #expect(try again.json()["id_token"] is String)
        }
    }

    @Test func a_public_client_presenting_a_secret_is_invalid_client() async throws {
        try await withPortal { p, client in
            let req = AuthRequest.cli()
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req, auth: .basic(Fixture.cliID, "something"))
            #expect(r.status == .unauthorized)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["error"] as? String == "invalid_client")
            #expect((r.headers[.wwwAuthenticate] ?? "").hasPrefix("Basic"))
            // Nothing was consumed: the code still redeems without a secret.
            let ok = try await client.redeem(code, req, auth: .none(Fixture.cliID))
            #expect(ok.status == .ok)
        }
    }

    @Test func wrong_secret_for_a_confidential_client_is_401_and_consumes_nothing() async throws {
        try await withPortal { p, client in
            let req = AuthRequest.webapp()
            let code = try await client.authorizationCode(p, Agent(), req)

            let wrong = try await client.redeem(code, req, auth: .basic(Fixture.webappID, "wrong-secret"))
            #expect(wrong.status == .unauthorized)
            #expect(wrong.contentType == "application/json")
            #expect(wrong.headers[.cacheControl] == "no-store")
            #expect((wrong.headers[.wwwAuthenticate] ?? "").hasPrefix("Basic"))
            #expect(try wrong.json()["error"] as? String == "invalid_client")
            #expect(try await p.familyCount() == 0)

            // No secret at all for a confidential client.
            let missing = try await client.redeem(code, req, auth: .none(Fixture.webappID))
            #expect(missing.status == .unauthorized)
            #expect(try missing.json()["error"] as? String == "invalid_client")

            let ok = try await client.redeem(code, req, auth: .webapp)
            #expect(ok.status == .ok)
            let refresh = try #require(try ok.json()["refresh_token"] as? String)

            let wrongRefresh = try await client.refresh(refresh, auth: .basic(Fixture.webappID, "wrong-secret"))
            #expect(wrongRefresh.status == .unauthorized)
            #expect((wrongRefresh.headers[.wwwAuthenticate] ?? "").hasPrefix("Basic"))
            #expect(try wrongRefresh.json()["error"] as? String == "invalid_client")

            let wrongPost = try await client.refresh(refresh, auth: .post(Fixture.webappID, "wrong-secret"))
            #expect(wrongPost.status == .unauthorized)
            #expect(try wrongPost.json()["error"] as? String == "invalid_client")

            // The refresh token was not consumed by the refused attempts.
            let refreshed = try await client.refresh(refresh, auth: .webapp)
            #expect(refreshed.status == .ok)
            #expect(try refreshed.json()["refresh_token"] as? String != refresh)
        }
    }

    @Test func client_secret_post_works() async throws {
        try await withPortal { p, client in
            let req = AuthRequest.webapp()
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req, auth: .post(Fixture.webappID, Fixture.webappSecret))
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            let j = try r.json()
            #expect(try jwtPart(try #require(j["id_token"] as? String), 1)["aud"] as? String == Fixture.webappID)
            let refresh = try #require(j["refresh_token"] as? String)
            let again = try await client.refresh(refresh, auth: .post(Fixture.webappID, Fixture.webappSecret))
            #expect(again.status == .ok)
        }
    }

    @Test func a_confidential_client_may_skip_pkce() async throws {
        try await withPortal { p, client in
            var req = AuthRequest.webapp()
            req.verifier = nil
            req.challengeMethod = nil
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req, auth: .webapp)
            #expect(r.status == .ok)
        }
    }

    @Test func two_authentication_methods_at_once_are_refused() async throws {
        try await withPortal { p, client in
            let (_, basic) = ClientAuth.webapp.apply()
            let req2 = AuthRequest.webapp()
            let code2 = try await client.authorizationCode(p, Agent(), req2)
            let both = try await client.token([("grant_type", "authorization_code"), ("code", code2), ("redirect_uri", req2.redirectURI),
                                               ("code_verifier", req2.verifier!), ("client_secret", Fixture.webappSecret)], headers: basic)
            #expect(both.status == .badRequest)
            #expect(try both.json()["error"] as? String == "invalid_request")
            #expect(try await p.familyCount() == 0)
        }
    }
}
