import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

@Suite struct SessionsAndLifetimes {
    @Test func refresh_stops_after_the_idle_timeout() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            p.clock.advance(p.rt.config.tokens.refreshIdleTimeout + 1)
            let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
        }
    }

    @Test func refresh_keeps_working_while_active_and_stops_at_the_absolute_lifetime() async throws {
        try await withPortal(configure: { $0.tokens.refreshAbsoluteLifetime = 3600 }) { p, client in
            var refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            // Every 10 minutes for 50 minutes: always fine.
            for _ in 0..<5 {
                p.clock.advance(600)
                let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
                try #require(r.status == .ok, "\(r.text)")
                refresh = try #require(try r.json()["refresh_token"] as? String)
            }
            p.clock.advance(600)
            let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
        }
    }

    @Test func a_disabled_user_can_no_longer_refresh_call_userinfo_or_use_the_session() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, agent, req)
            let tokens = try await client.redeem(code, req).json()
            let refresh = try #require(tokens["refresh_token"] as? String)
            let access = try #require(tokens["access_token"] as? String)

            try await p.rt.users.setDisabled(Fixture.username, disabled: true, actor: "test")

            let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
            let u = try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"])
            #expect(u.status == .unauthorized)
            let home = try await client.get("/", agent)
            #expect(home.status == .found)
            #expect(home.location == "/login")
            // The session no longer satisfies prompt=none either.
            var silent = AuthRequest()
            silent.extra = [("prompt", "none")]
            let s = try await client.get(silent.uri, agent)
            #expect(queryOf(try #require(s.location))?["error"] == "login_required")
        }
    }

    @Test func prompt_none_with_a_session_returns_a_code_without_ui() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            _ = try await client.authorizationCode(p, agent, AuthRequest())
            var silent = AuthRequest()
            silent.extra = [("prompt", "none")]
            let r = try await client.get(silent.uri, agent)
            #expect(r.status == .found)
            let location = try #require(r.location)
            let q = try #require(queryOf(location))
            #expect(q["code"] != nil)
            #expect(q["error"] == nil)
            #expect(q["iss"] == p.issuer)
        }
    }

    @Test func prompt_login_and_max_age_zero_force_a_fresh_login() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            _ = try await client.authorizationCode(p, agent, AuthRequest())
            for extra in [[("prompt", "login")], [("max_age", "0")]] {
                p.clock.advance(1)
                var req = AuthRequest()
                req.extra = extra
                let r = try await client.get(req.uri, agent)
                #expect(r.status == .found)
                #expect(r.location?.hasPrefix("/login?req=") == true, "\(extra)")
            }
        }
    }

    @Test func logout_ends_the_session_and_needs_csrf() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            _ = try await client.authorizationCode(p, agent, AuthRequest())
            let home = try await client.get("/", agent)
            let csrf = try #require(home.hiddenInput("csrf"))
            let session = try #require(agent.cookies["portal_session"])

            let forged = try await client.postForm("/logout", [], agent)
            #expect(forged.status == .forbidden)
            #expect(agent.cookies["portal_session"] == session)
            #expect(try await client.get("/", agent).status == .ok)

            let out = try await client.postForm("/logout", [("csrf", csrf)], agent)
            #expect(out.status == .seeOther)
            #expect(out.location == "/login")
            #expect(agent.cookies["portal_session"] == nil)
            // The old cookie value is dead on the server too, not only forgotten by the browser.
            let replayed = try await client.get("/", headers: [.cookie: "portal_session=\(session)"])
            #expect(replayed.status == .found)
            #expect(replayed.location == "/login")
        }
    }

    @Test func a_new_login_replaces_the_previous_session() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            _ = try await client.authorizationCode(p, agent, AuthRequest())
            let first = try #require(agent.cookies["portal_session"])
            var again = AuthRequest()
            again.extra = [("prompt", "login")]
            _ = try await client.authorizationCode(p, agent, again)
            let second = try #require(agent.cookies["portal_session"])
            #expect(first != second)
            let old = try await client.get("/", headers: [.cookie: "portal_session=\(first)"])
            #expect(old.status == .found)
        }
    }

    @Test func an_expired_pending_authorization_shows_the_expired_page() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let a = try await client.get(AuthRequest().uri, agent)
            let loginURI = try #require(a.location)
            p.clock.advance(p.rt.config.tokens.pendingAuthorizationTTL + 1)
            let r = try await client.get(loginURI, agent)
            #expect(r.status == .badRequest)
            #expect(r.text.contains("This sign-in has expired"))
        }
    }
}

@Suite struct ProtocolDetails {
    @Test func state_round_trips_byte_for_byte() async throws {
        try await withPortal { p, client in
            var req = AuthRequest()
            req.state = "a b&c=d/é?#%+"
            let code = try await client.authorizationCode(p, Agent(), req)
            #expect(!code.isEmpty)
            // And in error redirects too.
            var bad = AuthRequest()
            bad.state = "x&error=none"
            bad.challengeMethod = "plain"
            let r = try await client.get(bad.uri)
            let location = try #require(r.location)
            let q = try #require(queryOf(location))
            #expect(q["state"] == "x&error=none")
            #expect(q["error"] == "invalid_request")
            #expect(q.pairs.filter { $0.0 == "error" }.count == 1)
        }
    }

    @Test func repeated_authorization_parameters_are_refused() async throws {
        try await withPortal { _, client in
            // Repeated client_id: not trustworthy enough to redirect.
            let base = AuthRequest()
            let dupClient = try await client.get(base.uri + "&client_id=" + Fixture.cliID)
            #expect(dupClient.status == .badRequest)
            #expect(dupClient.location == nil)
            // Repeated redirect_uri: likewise.
            let dupRedirect = try await client.get(base.uri + "&redirect_uri=" + FormParameters.escape("http://localhost:18000"))
            #expect(dupRedirect.status == .badRequest)
            #expect(dupRedirect.location == nil)
            // Repeated scope: the error goes back to the verified redirect URI.
            let dupScope = try await client.get(base.uri + "&scope=openid")
            #expect(dupScope.status == .found)
            #expect(queryOf(try #require(dupScope.location))?["error"] == "invalid_request")
        }
    }

    @Test func a_refresh_cannot_widen_the_scope() async throws {
        try await withPortal { p, client in
            var req = AuthRequest()
            req.scope = "openid profile"
            let refresh = try #require(try await client.tokens(p, req)["refresh_token"] as? String)
            let r = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid profile groups"),
                                            ("client_id", Fixture.kubectlID)])
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_scope")
            let narrower = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh), ("scope", "openid"),
                                                   ("client_id", Fixture.kubectlID)])
            #expect(narrower.status == .ok)
            #expect(try narrower.json()["scope"] as? String == "openid")
        }
    }

    @Test func a_malformed_basic_header_is_invalid_client_with_a_basic_challenge() async throws {
        try await withPortal { _, client in
            for h in ["Basic !!!", "Basic " + Data("no-colon".utf8).base64EncodedString()] {
                let r = try await client.token([("grant_type", "refresh_token"), ("refresh_token", SystemRandom().token())],
                                               headers: [.authorization: h])
                #expect(r.status == .unauthorized, "\(h)")
                #expect(r.contentType == "application/json")
                #expect((r.headers[.wwwAuthenticate] ?? "").hasPrefix("Basic"))
                #expect(try r.json()["error"] as? String == "invalid_client")
            }
        }
    }

    @Test func basic_id_and_body_client_id_must_agree() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let basic = "Basic " + Data("kubernetes:".utf8).base64EncodedString()
            let r = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", Fixture.cliID)],
                                           headers: [.authorization: basic])
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_request")
            let ok = try await client.token([("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", Fixture.kubectlID)],
                                            headers: [.authorization: basic])
            #expect(ok.status == .ok)
        }
    }

    @Test func userinfo_never_takes_a_token_from_the_url() async throws {
        try await withPortal { p, client in
            let access = try #require(try await client.tokens(p)["access_token"] as? String)
            let r = try await client.get("/userinfo?access_token=\(access)")
            #expect(r.status == .unauthorized)
        }
    }

    @Test func an_id_token_is_not_accepted_as_an_access_token() async throws {
        try await withPortal { p, client in
            let id = try #require(try await client.tokens(p)["id_token"] as? String)
            let r = try await client.get("/userinfo", headers: [.authorization: "Bearer \(id)"])
            #expect(r.status == .unauthorized)
            #expect((r.headers[.wwwAuthenticate] ?? "").contains(#"error="invalid_token""#))
        }
    }

    @Test func a_huge_login_form_is_413_page() async throws {
        try await withPortal { _, client in
            let body = "username=" + String(repeating: "a", count: 1 << 20)
            let r = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                             body: ByteBuffer(string: body))
            #expect(r.status == .contentTooLarge)
            #expect(r.contentType == "text/html; charset=utf-8")
        }
    }
}

@Suite struct Escaping {
    @Test func reflected_input_is_html_escaped() async throws {
        try await withPortal { _, client in
            let evil = #"<script>alert(1)</script>"#
            let page = try await client.get("/authorize?" + FormParameters.encode([("client_id", evil), ("redirect_uri", "https://x")]))
            #expect(page.status == .badRequest)
            #expect(!page.text.contains(evil))
            #expect(page.text.contains("&lt;script&gt;"))

            let agent = Agent()
            let login = try await client.get("/login", agent)
            let csrf = try #require(login.hiddenInput("csrf"))
            let r = try await client.postForm("/login", [("csrf", csrf), ("username", #""><img src=x onerror=alert(1)>"#),
                                                         ("password", "wrong password")], agent)
            #expect(r.status == .unauthorized)
            #expect(!r.text.contains("<img src=x"))
        }
    }

    @Test func unknown_usernames_are_locked_out_like_known_ones() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let login = try await client.get("/login", agent)
            let csrf = try #require(login.hiddenInput("csrf"))
            var statuses: [HTTPResponse.Status] = []
            for _ in 1...5 {
                statuses.append(try await client.postForm("/login", [("csrf", csrf), ("username", "nobody"), ("password", "wrong password")], agent).status)
            }
            #expect(statuses == [.unauthorized, .unauthorized, .unauthorized, .unauthorized, .tooManyRequests])
        }
    }

    @Test func login_without_a_pending_request_goes_home() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let login = try await client.get("/login", agent)
            let csrf = try #require(login.hiddenInput("csrf"))
            #expect(login.hiddenInput("req") == nil)
            let r = try await client.postForm("/login", [("csrf", csrf), ("username", Fixture.username), ("password", Fixture.password)], agent)
            #expect(r.status == .seeOther)
            #expect(r.location == "/")
            #expect(agent.cookies["portal_session"] != nil)
            let home = try await client.get("/", agent)
            #expect(home.status == .ok)
            #expect(home.text.contains("Alice Example"))
        }
    }
}

@Suite struct Concurrency {
    @Test func a_code_redeemed_twice_at_once_succeeds_exactly_once() async throws {
        try await withPortal { p, client in
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, Agent(), req)
            async let a = client.redeem(code, req)
            async let b = client.redeem(code, req)
            let results = try await [a, b]
            let ok = results.filter { $0.status == .ok }
            let refused = results.filter { $0.status == .badRequest }
            #expect(ok.count == 1)
            #expect(refused.count == 1)
            for r in refused { #expect(try r.json()["error"] as? String == "invalid_grant") }
        }
    }

    /// Parallel kubectl processes refreshing at once: the same successor for all, never a second one.
    @Test func parallel_refreshes_never_fork_the_family() async throws {
        try await withPortal { p, client in
            let r1 = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let results = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<4 { group.addTask { try await client.refresh(r1, auth: .none(Fixture.kubectlID)) } }
                var out: [TestResponse] = []
                for try await r in group { out.append(r) }
                return out
            }
            let successors = Set(try results.filter { $0.status == .ok }.compactMap { try $0.json()["refresh_token"] as? String })
            #expect(results.allSatisfy { $0.status == .ok })
            #expect(successors.count == 1)
            #expect(try await p.familyCount() == 1)
        }
    }

    @Test func a_replay_after_the_successor_was_used_kills_the_family_even_inside_the_grace_window() async throws {
        try await withPortal { p, client in
            let r1 = try #require(try await client.tokens(p)["refresh_token"] as? String)
            let r2 = try #require(try await client.refresh(r1, auth: .none(Fixture.kubectlID)).json()["refresh_token"] as? String)
            let r3 = try #require(try await client.refresh(r2, auth: .none(Fixture.kubectlID)).json()["refresh_token"] as? String)
            let replay = try await client.refresh(r1, auth: .none(Fixture.kubectlID))
            #expect(replay.status == .badRequest)
            #expect(try replay.json()["error"] as? String == "invalid_grant")
            let dead = try await client.refresh(r3, auth: .none(Fixture.kubectlID))
            #expect(dead.status == .badRequest)
            #expect(try await p.familyCount() == 0)
        }
    }
}

@Suite struct MoreProtocolDetails {
    @Test func a_verifier_for_a_code_issued_without_a_challenge_is_invalid_grant() async throws {
        try await withPortal { p, client in
            var req = AuthRequest.webapp()
            req.verifier = nil
            req.challengeMethod = nil
            let code = try await client.authorizationCode(p, Agent(), req)
            let r = try await client.redeem(code, req, auth: .webapp, extra: [("code_verifier", SystemRandom().token(byteCount: 48))])
            #expect(r.status == .badRequest)
            #expect(try r.json()["error"] as? String == "invalid_grant")
        }
    }

    @Test func the_code_redirect_is_not_cacheable() async throws {
        try await withPortal { _, client in
            let r = try await client.signIn(Agent(), AuthRequest())
            #expect(r.status == .seeOther)
            #expect(r.headers[.cacheControl] == "no-store")
        }
    }

    @Test func a_disabled_users_correct_password_gets_the_same_401_page() async throws {
        try await withPortal { p, client in
            try await p.rt.users.setDisabled(Fixture.username, disabled: true, actor: "test")
            let r = try await client.signIn(Agent(), AuthRequest())
            #expect(r.status == .unauthorized)
            #expect(r.alert == "Incorrect username or password.")
            #expect(r.location == nil)
        }
    }

    @Test func authorize_also_accepts_post() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let r = try await client.postForm("/authorize", AuthRequest().pairs, agent)
            #expect(r.status == .found)
            #expect(r.location?.hasPrefix("/login?req=") == true)
        }
    }

    @Test func refreshed_id_tokens_keep_subject_auth_time_and_audience() async throws {
        try await withPortal { p, client in
            let first = try await client.tokens(p)
            let claims1 = try jwtPart(try #require(first["id_token"] as? String), 1)
            p.clock.advance(120)
            let r = try await client.refresh(try #require(first["refresh_token"] as? String), auth: .none(Fixture.kubectlID))
            let claims2 = try jwtPart(try #require(try r.json()["id_token"] as? String), 1)
            #expect(claims2["sub"] as? String == claims1["sub"] as? String)
            #expect(claims2["aud"] as? String == Fixture.kubectlID)
            #expect(claims2["auth_time"] as? Int == claims1["auth_time"] as? Int)
            #expect((claims2["iat"] as? Int ?? 0) == (claims1["iat"] as? Int ?? 0) + 120)
            #expect(claims2["groups"] as? [String] == ["developers", "ops"])
        }
    }
}

@Suite struct KeysAndClaims {
    @Test func es256_opt_in_is_advertised_published_and_used() async throws {
        try await withPortal(configure: { $0.signing.algorithm = .es256 }) { p, client in
            let d = try await client.get("/.well-known/openid-configuration").json()
            #expect(d["id_token_signing_alg_values_supported"] as? [String] == ["ES256"])
            let keys = try #require(try await client.get("/keys").json()["keys"] as? [[String: Any]])
            #expect(keys.allSatisfy { $0["kty"] as? String == "EC" && $0["crv"] as? String == "P-256" && $0["alg"] as? String == "ES256" })
            let tokens = try await client.tokens(p)
            let header = try jwtPart(try #require(tokens["id_token"] as? String), 0)
            #expect(header["alg"] as? String == "ES256")
            #expect(keys.contains { $0["kid"] as? String == header["kid"] as? String })
            let access = try #require(tokens["access_token"] as? String)
            #expect(try await client.get("/userinfo", headers: [.authorization: "Bearer \(access)"]).status == .ok)
        }
    }

    @Test func changed_groups_show_in_the_next_refreshed_id_token() async throws {
        try await withPortal { p, client in
            let refresh = try #require(try await client.tokens(p)["refresh_token"] as? String)
            try await p.rt.storage.updateUser(id: p.alice.id) { $0.groups = ["admins"] }
            let r = try await client.refresh(refresh, auth: .none(Fixture.kubectlID))
            #expect(r.status == .ok)
            let claims = try jwtPart(try #require(try r.json()["id_token"] as? String), 1)
            #expect(claims["groups"] as? [String] == ["admins"])
        }
    }
}
