import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

@Suite struct CodeFlow {
    @Test func code_flow_with_pkce_issues_no_store_bearer_tokens() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req)
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            #expect(r.headers[.cacheControl] == "no-store")
            #expect(r.headers[HTTPField.Name("Pragma")!] == "no-cache")
            let j = try r.json()
            #expect(j["token_type"] as? String == "Bearer")
            #expect(j["expires_in"] as? Int == 60)
            let access = try #require(j["access_token"] as? String)
            let refresh = try #require(j["refresh_token"] as? String)
            let idToken = try #require(j["id_token"] as? String)
            #expect(refresh.utf8.count == 43)
            #expect(access.hasPrefix("kpa_") && access.split(separator: ".").count == 2)

            let header = try jwtPart(idToken, 0)
            let claims = try jwtPart(idToken, 1)
            #expect(header["alg"] as? String == "RS256")
            #expect(claims["iss"] as? String == p.issuer)
            #expect(claims["sub"] as? String == p.alice.id)
            #expect(claims["aud"] as? String == Fixture.kubectlID)
            #expect(claims["nonce"] as? String == req.nonce)
            #expect(claims["preferred_username"] as? String == "alice")
            #expect(claims["email"] as? String == "alice@example.com")
            #expect(claims["groups"] as? [String] == ["developers", "ops"])
            #expect(claims["at_hash"] as? String == TokenMinter.atHash(access))
            let iat = try #require(claims["iat"] as? Int), exp = try #require(claims["exp"] as? Int)
            #expect(exp - iat == 60)

            // The key that signed it is published.
            let keys = try #require(try await client.get("/keys").json()["keys"] as? [[String: Any]])
            #expect(keys.contains { $0["kid"] as? String == header["kid"] as? String })
            #expect(try await p.familyCount() == 1)
        }
    }

    @Test func the_family_a_code_starts_records_the_user_agent_of_the_token_request() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            var params = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", req.redirectURI), ("client_id", req.clientID)]
            if let v = req.verifier { params.append(("code_verifier", v)) }
            let kubectl = "kubectl/v1.32.0 (linux/amd64) kubernetes/abc123"
            let r = try await client.token(params, headers: [.userAgent: kubectl])
            #expect(r.status == .ok)
            let families = try await p.rt.storage.activeFamilies(userID: p.alice.id, now: p.clock.now())
            #expect(families.map(\.userAgent) == [kubectl])
        }
    }

    @Test func userinfo_accepts_the_access_token_by_header_and_by_post_body() async throws {
        try await withPortal { p, client in
            let access = try #require(try await client.tokens(p)["access_token"] as? String)

            let g = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(g.status == .ok)
            #expect(g.contentType == "application/json")
            let info = try g.json()
            #expect(info["sub"] as? String == p.alice.id)
            #expect(info["preferred_username"] as? String == "alice")
            #expect(info["email"] as? String == "alice@example.com")
            #expect(info["groups"] as? [String] == ["developers", "ops"])

            let ph = try await client.execute(uri: "/userinfo", method: .post, headers: [.authorization: "Bearer \(access)"])
            #expect(ph.status == .ok)
            #expect(try ph.json()["sub"] as? String == p.alice.id)

            let pb = try await client.postForm("/userinfo", [("access_token", access)])
            #expect(pb.status == .ok)
            #expect(pb.contentType == "application/json")
            #expect(try pb.json()["sub"] as? String == p.alice.id)

            // Both at once is ambiguous (RFC 6750 §2).
            let both = try await client.postForm("/userinfo", [("access_token", access)], headers: [.authorization: "Bearer \(access)"])
            #expect(both.status == .badRequest)
            #expect(try both.json()["error"] as? String == "invalid_request")
        }
    }

    @Test func userinfo_without_a_token_is_401_with_a_bearer_challenge() async throws {
        try await withPortal { _, client in
            let r = try await client.get("/userinfo")
            #expect(r.status == .unauthorized)
            #expect(r.contentType == "application/json")
            let challenge = try #require(r.headers[.wwwAuthenticate])
            #expect(challenge.hasPrefix("Bearer"))
            #expect(try r.json()["error"] as? String == "invalid_token")
        }
    }

    @Test func userinfo_refuses_a_tampered_token_and_an_unsigned_one() async throws {
        try await withPortal { p, client in
            let access = try #require(try await client.tokens(p)["access_token"] as? String)
            let parts = access.split(separator: ".", omittingEmptySubsequences: false)
            #expect(parts.count == 2 && access.hasPrefix("kpa_"))
            // Claims swapped for other ones under the genuine MAC; the MAC of another message; an id_token-like JWS.
            let forgedClaims = "kpa_" + Base64URL.encode(Array(#"{"sub":"someone-else","sid":"x","client_id":"rp","scope":"openid","iat":1,"exp":99999999999,"jti":"j"}"#.utf8))
            let forged = forgedClaims + "." + parts[1]
            let unsigned = forgedClaims + "."
            let none = Base64URL.encode(Array(#"{"alg":"none","typ":"at+jwt"}"#.utf8)) + "." + String(parts[0].dropFirst(4)) + "."
            for bad in [tamperedSignature(access), forged, unsigned, none, String(access.dropLast(5)), "not-a-jwt", "kpa_", "kpa_."] {
                let r = try await client.get("/userinfo", headers: [.authorization: "Bearer \(bad)"])
                #expect(r.status == .unauthorized, "\(bad)")
                #expect(r.contentType == "application/json")
                let challenge = r.headers[.wwwAuthenticate] ?? ""
                #expect(challenge.hasPrefix("Bearer"))
                #expect(challenge.contains(#"error="invalid_token""#))
                #expect(try r.json()["error"] as? String == "invalid_token")
            }
            // The genuine one still works.
            let ok = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(ok.status == .ok)
        }
    }

    @Test func userinfo_refuses_an_expired_access_token() async throws {
        try await withPortal { p, client in
            let access = try #require(try await client.tokens(p)["access_token"] as? String)
            p.clock.advance(61)
            let r = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(r.status == .unauthorized)
            #expect((r.headers[.wwwAuthenticate] ?? "").contains(#"error="invalid_token""#))
        }
    }

    @Test func unknown_parameters_are_ignored() async throws {
        try await withPortal { p, client in
            var req = AuthRequest()
            req.extra = [("foo", "bar"), ("ui_locales", "de"), ("x-custom", "1")]
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req, extra: [("foo", "bar"), ("audience", "whatever")])
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["id_token"] is String)
        }
    }

    @Test func an_existing_session_gets_a_code_without_a_login_page() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            _ = try await client.authorizationCode(p, agent, AuthRequest())
            #expect(agent.cookies["portal_session"] != nil)
            let req = AuthRequest()
            let r = try await client.get(req.uri, agent)
            #expect(r.status == .found)
            let location = try #require(r.location)
            #expect(location.hasPrefix(req.redirectURI + "?"))
            #expect(queryOf(location)?["code"] != nil)
            #expect(queryOf(location)?["state"] == req.state)
        }
    }
}

@Suite struct RefreshThroughHTTP {
    @Test func refresh_rotates_the_token() async throws {
        try await withPortal { p, client in
            let first = try await client.tokens(p)
            let r1 = try #require(first["refresh_token"] as? String)
            p.clock.advance(30)
            let r = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            #expect(r.headers[.cacheControl] == "no-store")
            let j = try r.json()
            let r2 = try #require(j["refresh_token"] as? String)
            #expect(r2 != r1)
            #expect(r2.utf8.count == 43)
            let id = try #require(j["id_token"] as? String)
            #expect(id != first["id_token"] as? String)
            #expect(try jwtPart(id, 1)["sub"] as? String == p.alice.id)
            #expect(j["expires_in"] as? Int == 60)

            // The successor rotates again.
            p.clock.advance(30)
            let again = try await client.refresh(r2, auth: .none(Fixture.kubectlID))
            #expect(again.status == .ok)
            #expect(try again.json()["refresh_token"] as? String != r2)
        }
    }

    @Test func parallel_refresh_inside_the_grace_window_gets_the_same_successor() async throws {
        try await withPortal { p, client in
            let r1 = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let a = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            let b = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            #expect(a.status == .ok)
            #expect(b.status == .ok)
            #expect(try a.json()["refresh_token"] as? String == b.json()["refresh_token"] as? String)
        }
    }

    @Test func replayed_refresh_token_is_invalid_grant_and_kills_the_successor() async throws {
        try await withPortal { p, client in
            let tokens = try await client.tokens(p)
            let r1 = try #require(tokens["refresh_token"] as? String)
            let access = try #require(tokens["access_token"] as? String)
            let rotated = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            let r2 = try #require(try rotated.json()["refresh_token"] as? String)

            p.clock.advance(10)  // past the grace window for parallel kubectl processes
            let replay = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            #expect(replay.status == .badRequest)
            #expect(replay.contentType == "application/json")
            #expect(replay.headers[.cacheControl] == "no-store")
            #expect(try replay.json()["error"] as? String == "invalid_grant")

            let dead = try await client.refresh(r2, auth: .none(Fixture.kubectlID))
            #expect(dead.status == .badRequest)
            #expect(try dead.json()["error"] as? String == "invalid_grant")
            #expect(try await p.familyCount() == 0)
            #expect(try await p.auditCount("token.replay") == 1)

            // Access tokens of the family stop working at once.
            let u = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(u.status == .unauthorized)
        }
    }

    @Test func mangled_refresh_tokens_are_invalid_grant_and_consume_nothing() async throws {
        try await withPortal { p, client in
            let r1 = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let recased = String(r1.map { $0.isUppercase ? Character($0.lowercased()) : Character($0.uppercased()) })
            for bad in [String(r1.dropLast()), r1 + "=", r1 + "A", r1.uppercased(), r1.lowercased(), recased, " " + r1, ""] where bad != r1 {
                let r = try await client.refresh(bad, auth: .none(Fixture.kubectlID))
                #expect(r.status == .badRequest, "\(bad)")
                #expect(r.contentType == "application/json")
                let e = try r.json()["error"] as? String
                #expect(e == (bad.isEmpty ? "invalid_request" : "invalid_grant"), "\(bad)")
            }
            #expect(try await p.familyCount() == 1)
            let ok = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            #expect(ok.status == .ok)
        }
    }
}
