import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

/// Bad input gets the right OAuth error (JSON, redirect, or page) and leaves nothing written.
@Suite struct AuthorizeBadInput {
    /// RFC 6749 §4.1.2.1: never redirect to an unverified URI; show a page instead.
    @Test(arguments: [
        Fixture.webappRedirect + "/",                      // trailing slash
        "https://APP.example.com/callback",                // other case (host)
        "https://app.example.com/Callback",                // other case (path)
        "HTTPS://app.example.com/callback",                // other case (scheme)
        Fixture.webappRedirect + "?x=1",                   // extra query
        Fixture.webappRedirect + "#frag",                  // fragment
        "https://evil.example.com/callback",               // other host
        "https://app.example.com.evil.example/callback",   // prefix match
        "https://app.example.com:8443/callback",           // other port
        "http://app.example.com/callback",                 // other scheme
        "javascript:alert(1)",
        "",
    ])
    func mismatched_redirect_uri_shows_a_page_and_never_redirects(_ uri: String) async throws {
        try await withPortal { p, client in
            var req = AuthRequest.webapp()
            req.redirectURI = uri
            let r = try await client.get(req.uri)
            #expect(r.status == .badRequest)
            #expect(r.contentType == "text/html; charset=utf-8")
            #expect(r.location == nil)
            #expect(r.setCookies.isEmpty)
            #expect(r.text.contains("This sign-in link is not valid"))
            #expect(!r.text.contains("evil.example"))
            #expect(try await p.auditCount("code.issue") == 0)
        }
    }

    @Test func unknown_client_shows_a_page() async throws {
        try await withPortal { _, client in
            var req = AuthRequest()
            req.clientID = "nobody"
            let r = try await client.get(req.uri)
            #expect(r.status == .badRequest)
            #expect(r.contentType == "text/html; charset=utf-8")
            #expect(r.location == nil)
            #expect(r.setCookies.isEmpty)
            #expect(r.text.contains("This sign-in link is not valid"))
        }
    }

    @Test func plain_pkce_is_refused_by_redirect_with_state_and_iss() async throws {
        try await withPortal { p, client in
            var req = AuthRequest.cli()
            req.challengeMethod = "plain"
            let r = try await client.get(req.uri)
            #expect(r.status == .found)
            let location = try #require(r.location)
            #expect(location.hasPrefix(Fixture.cliRedirect + "?"))
            let q = try #require(queryOf(location))
            #expect(q["error"] == "invalid_request")
            #expect(q["error_description"] != nil)
            #expect(q["state"] == req.state)
            #expect(q["iss"] == p.issuer)
            #expect(q["code"] == nil)
            #expect(r.setCookies.isEmpty)
        }
    }

    @Test func a_challenge_without_a_method_means_plain_and_is_refused() async throws {
        try await withPortal { _, client in
            var req = AuthRequest.cli()
            req.challengeMethod = nil
            let r = try await client.get(req.uri)
            #expect(r.status == .found)
            #expect(queryOf(try #require(r.location))?["error"] == "invalid_request")
        }
    }

    @Test func public_client_without_pkce_is_refused_by_redirect() async throws {
        try await withPortal { p, client in
            for var req in [AuthRequest.cli(), AuthRequest()] {
                req.verifier = nil
                req.challengeMethod = nil
                let r = try await client.get(req.uri)
                #expect(r.status == .found)
                let location = try #require(r.location)
                #expect(location.hasPrefix(req.redirectURI + "?"))
                let q = try #require(queryOf(location))
                #expect(q["error"] == "invalid_request")
                #expect(q["state"] == req.state)
                #expect(q["iss"] == p.issuer)
            }
        }
    }

    @Test func unsupported_response_type_and_missing_openid_scope_redirect_with_the_right_error() async throws {
        try await withPortal { _, client in
            var token = AuthRequest.cli()
            token.extra = []
            let uri = token.uri.replacingOccurrences(of: "response_type=code", with: "response_type=token")
            let r = try await client.get(uri)
            #expect(queryOf(try #require(r.location))?["error"] == "unsupported_response_type")

            var noOpenID = AuthRequest.cli()
            noOpenID.scope = "profile"
            let s = try await client.get(noOpenID.uri)
            #expect(queryOf(try #require(s.location))?["error"] == "invalid_scope")
        }
    }

    @Test func prompt_none_without_a_session_redirects_with_login_required() async throws {
        try await withPortal { p, client in
            var req = AuthRequest()
            req.extra = [("prompt", "none")]
            let r = try await client.get(req.uri)
            #expect(r.status == .found)
            let location = try #require(r.location)
            #expect(location.hasPrefix(req.redirectURI + "?"))
            let q = try #require(queryOf(location))
            #expect(q["error"] == "login_required")
            #expect(q["state"] == req.state)
            #expect(q["iss"] == p.issuer)
            #expect(r.setCookies.isEmpty)
        }
    }

    @Test func a_pending_authorization_cannot_be_completed_from_another_browser() async throws {
        try await withPortal { p, client in
            let mine = Agent()
            let req = AuthRequest()
            let a = try await client.get(req.uri, mine)
            let loginURI = try #require(a.location)
            let reqID = String(loginURI.dropFirst("/login?req=".count))

            let other = Agent()
            let page = try await client.get(loginURI, other)
            #expect(page.status == .badRequest)
            #expect(page.contentType == "text/html; charset=utf-8")
            #expect(page.text.contains("This sign-in has expired"))

            // Even with a valid form from its own login page, the other browser cannot finish it.
            let own = try await client.get("/login", other)
            let csrf = try #require(own.hiddenInput("csrf"))
            let post = try await client.postForm("/login", [("csrf", csrf), ("req", reqID), ("username", Fixture.username),
                                                            ("password", Fixture.password)], other)
            #expect(post.status == .badRequest)
            #expect(post.contentType == "text/html; charset=utf-8")
            #expect(post.location == nil)
            #expect(post.text.contains("This sign-in has expired"))
            #expect(other.cookies["portal_session"] == nil)
            #expect(try await p.auditCount("code.issue") == 0)

            // The browser that started it still can.
            let mineCSRF = try #require(try await client.get(loginURI, mine).hiddenInput("csrf"))
            let done = try await client.postForm("/login", [("csrf", mineCSRF), ("req", reqID), ("username", Fixture.username),
                                                            ("password", Fixture.password)], mine)
            #expect(done.status == .seeOther)
            #expect(done.location?.hasPrefix(req.redirectURI + "?code=") == true)
        }
    }
}

@Suite struct TokenBadInput {
    @Test func missing_or_wrong_code_verifier_is_invalid_grant_and_consumes_nothing() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            var missing = req
            missing.verifier = nil
            let a = try await client.redeem(code, missing)
            #expect(a.status == .badRequest)
            #expect(a.contentType == "application/json")
            #expect(try a.json()["error"] as? String == "invalid_grant")

            var wrong = req
            wrong.verifier = SystemRandom().token(byteCount: 48)
            let b = try await client.redeem(code, wrong)
            #expect(b.status == .badRequest)
            #expect(try b.json()["error"] as? String == "invalid_grant")

            var malformed = req
            malformed.verifier = "short"
            let c = try await client.redeem(code, malformed)
            #expect(try c.json()["error"] as? String == "invalid_grant")

            #expect(try await p.familyCount() == 0)
            let ok = try await client.redeem(code, req)
            #expect(ok.status == .ok)
        }
    }

    @Test func a_redirect_uri_differing_from_the_authorization_request_is_invalid_grant() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            var other = req
            other.redirectURI = "http://localhost:18000"
            let r = try await client.redeem(code, other)
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
            #expect(try await p.familyCount() == 0)
        }
    }

    @Test func code_replay_is_invalid_grant_and_revokes_what_the_first_redemption_minted() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            let first = try await client.redeem(code, req)
            #expect(first.status == .ok)
            let tokens = try first.json()
            let refresh = try #require(tokens["refresh_token"] as? String)
            let access = try #require(tokens["access_token"] as? String)

            let replay = try await client.redeem(code, req)
            #expect(replay.status == .badRequest)
            #expect(replay.contentType == "application/json")
            #expect(try replay.json()["error"] as? String == "invalid_grant")
            #expect(try await p.auditCount("code.replay") == 1)

            let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
            let u = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(u.status == .unauthorized)
            #expect(try await p.familyCount() == 0)
        }
    }

    @Test func another_clients_code_is_invalid_grant_and_consumes_nothing() async throws {
        try await withPortal { p, client in
            let req = AuthRequest.webapp()
            let code = try await client.authorizationCode(p, Agent(), req)
            var stolen = req
            stolen.clientID = Fixture.cliID
            let r = try await client.redeem(code, stolen, auth: .none(Fixture.cliID))
            #expect(r.status == .badRequest)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["error"] as? String == "invalid_grant")
            #expect(try await p.familyCount() == 0)
            let ok = try await client.redeem(code, req, auth: .webapp)
            #expect(ok.status == .ok)
        }
    }

    @Test func another_clients_refresh_token_is_invalid_grant() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let r = try await client.refresh(refresh, auth: .none(Fixture.cliID))
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
            let ok = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(ok.status == .ok)
        }
    }

    @Test func an_expired_code_is_invalid_grant() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            p.clock.advance(61)
            let r = try await client.redeem(code, req)
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
            #expect(try await p.familyCount() == 0)
        }
    }

    @Test func get_on_the_token_endpoint_is_405_json() async throws {
        try await withPortal { _, client in
            let r = try await client.get("/token?grant_type=authorization_code")
            #expect(r.status == .methodNotAllowed)
            #expect(r.contentType == "application/json")
            #expect(r.headers[.allow] == "POST")
            #expect(try r.json()["error"] as? String == "invalid_request")
        }
    }

    @Test func a_repeated_grant_type_is_invalid_request() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let r = try await client.token([("grant_type", "refresh_token"), ("grant_type", "refresh_token"),
                                            ("refresh_token", refresh), ("client_id", Fixture.kubectlID)])
            #expect(r.status == .badRequest)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["error"] as? String == "invalid_request")
            let dup = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh), ("refresh_token", refresh),
                                              ("client_id", Fixture.kubectlID)])
            #expect(try dup.json()["error"] as? String == "invalid_request")
            // Nothing consumed.
            #expect(try await client.refresh(refresh, auth: .none(Fixture.kubectlID)).status == .ok)
        }
    }

    @Test func unknown_grant_type_is_unsupported_grant_type() async throws {
        try await withPortal { _, client in
            let r = try await client.token([("grant_type", "password"), ("username", "alice"), ("password", "x"),
                                            ("client_id", Fixture.kubectlID)])
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "unsupported_grant_type")
        }
    }

    @Test func a_one_megabyte_body_is_413_with_oauth_json() async throws {
        try await withPortal { _, client in
            let body = "grant_type=refresh_token&refresh_token=" + String(repeating: "A", count: 1 << 20)
            let r = try await client.execute(uri: "/token", method: .post,
                                             headers: [.contentType: "application/x-www-form-urlencoded"],
                                             body: ByteBuffer(string: body))
            #expect(r.status == .contentTooLarge)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["error"] as? String == "invalid_request")
        }
    }

    @Test func a_wrong_content_type_is_invalid_request() async throws {
        try await withPortal { _, client in
            for type in ["application/json", "text/plain", "multipart/form-data; boundary=x"] {
                let r = try await client.execute(uri: "/token", method: .post, headers: [.contentType: type],
                                                 body: ByteBuffer(string: #"{"grant_type":"refresh_token"}"#))
                #expect(r.status == .badRequest, "\(type)")
                #expect(r.contentType == "application/json")
                #expect(try r.json()["error"] as? String == "invalid_request")
            }
            let none = try await client.execute(uri: "/token", method: .post, body: ByteBuffer(string: "grant_type=refresh_token"))
            #expect(none.status == .badRequest)
            #expect(try none.json()["error"] as? String == "invalid_request")
        }
    }

    @Test func malformed_form_encoding_is_invalid_request() async throws {
        try await withPortal { _, client in
            let r = try await client.execute(uri: "/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                             body: ByteBuffer(string: "grant_type=%zz"))
            #expect(r.status == .badRequest)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["error"] as? String == "invalid_request")
        }
    }

    @Test func no_client_identification_is_invalid_client() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let r = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh)])
            #expect(r.status == .unauthorized)
            #expect(try r.json()["error"] as? String == "invalid_client")
            // No Basic was tried, so no Basic challenge is owed; the token still works.
            #expect(try await client.refresh(refresh, auth: .none(Fixture.kubectlID)).status == .ok)
        }
    }
}
