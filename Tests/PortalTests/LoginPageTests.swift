import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

@Suite struct LoginPage {
    /// A login page opened through /authorize: its CSRF token and pending request id.
    func openLogin(_ client: any TestClientProtocol, _ agent: Agent) async throws -> (csrf: String, req: String) {
        let a = try await client.get(AuthRequest().uri, agent)
        let loginURI = try #require(a.location)
        let page = try await client.get(loginURI, agent)
        #expect(page.status == .ok)
        #expect(page.contentType == "text/html; charset=utf-8")
        return (try #require(page.hiddenInput("csrf")), String(loginURI.dropFirst("/login?req=".count)))
    }

    @Test func login_without_csrf_or_with_a_wrong_one_is_403_and_sets_no_session() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let (csrf, req) = try await openLogin(client, agent)
            let forms: [[(String, String)]] = [
                [("req", req), ("username", Fixture.username), ("password", Fixture.password)],
                [("csrf", ""), ("req", req), ("username", Fixture.username), ("password", Fixture.password)],
                [("csrf", SystemRandom().token()), ("req", req), ("username", Fixture.username), ("password", Fixture.password)],
                [("csrf", String(csrf.dropLast())), ("req", req), ("username", Fixture.username), ("password", Fixture.password)],
            ]
            for form in forms {
                let r = try await client.postForm("/login", form, agent)
                #expect(r.status == .forbidden)
                #expect(r.contentType == "text/html; charset=utf-8")
                #expect(r.text.contains("This form has expired"))
                #expect(r.location == nil)
                #expect(!r.setCookies.contains { $0.hasPrefix("portal_session=") })
            }
            // The right token from another browser is no good either.
            let thief = Agent()
            _ = try await client.get("/login", thief)
            let stolen = try await client.postForm("/login", [("csrf", csrf), ("req", req), ("username", Fixture.username),
                                                              ("password", Fixture.password)], thief)
            #expect(stolen.status == .forbidden)
            #expect(thief.cookies["portal_session"] == nil)
            #expect(agent.cookies["portal_session"] == nil)
            #expect(try await p.auditCount("login.success") == 0)
        }
    }

    @Test func wrong_password_and_unknown_user_get_the_same_401_page() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let (csrf, req) = try await openLogin(client, agent)
            let wrong = try await client.postForm("/login", [("csrf", csrf), ("req", req), ("username", Fixture.username),
                                                             ("password", "not the password")], agent)
            let unknown = try await client.postForm("/login", [("csrf", csrf), ("req", req), ("username", "mallory"),
                                                               ("password", "not the password")], agent)
            for r in [wrong, unknown] {
                #expect(r.status == .unauthorized)
                #expect(r.contentType == "text/html; charset=utf-8")
                #expect(r.location == nil)
                #expect(r.setCookies.isEmpty)
                #expect(r.alert == "Incorrect username or password.")
                // The form is shown again, still bound to the pending request.
                #expect(r.hiddenInput("req") == req)
                // A fresh mask of the same CSRF token (BREACH): other text, accepted all the same.
                #expect(r.hiddenInput("csrf") != csrf)
            }
            #expect(wrong.alert == unknown.alert)
            #expect(agent.cookies["portal_session"] == nil)
            #expect(try await p.auditCount("login.failure") == 2)
            let ok = try await client.postForm("/login", [("csrf", try #require(wrong.hiddenInput("csrf"))), ("req", req),
                                                          ("username", Fixture.username), ("password", Fixture.password)], agent)
            #expect(ok.status == .seeOther)
        }
    }

    @Test func a_blank_password_is_refused_like_a_wrong_one() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let (csrf, req) = try await openLogin(client, agent)
            let r = try await client.postForm("/login", [("csrf", csrf), ("req", req), ("username", Fixture.username), ("password", "  ")], agent)
            #expect(r.status == .unauthorized)
            #expect(r.alert == "Incorrect username or password.")
        }
    }

    @Test func five_failures_lock_the_account_out_with_429() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let (csrf, req) = try await openLogin(client, agent)
            func attempt(_ password: String) async throws -> TestResponse {
                try await client.postForm("/login", [("csrf", csrf), ("req", req), ("username", Fixture.username), ("password", password)], agent)
            }
            for _ in 1...4 {
                #expect(try await attempt("wrong password").status == .unauthorized)
            }
            let fifth = try await attempt("wrong password")
            #expect(fifth.status == .tooManyRequests)
            #expect(fifth.contentType == "text/html; charset=utf-8")
            #expect(fifth.alert?.hasPrefix("Too many failed attempts.") == true)

            // Locked: even the right password is refused, and no session is started.
            let right = try await attempt(Fixture.password)
            #expect(right.status == .tooManyRequests)
            #expect(right.location == nil)
            #expect(agent.cookies["portal_session"] == nil)

            // After the lockout the right password works again.
            p.clock.advance(16 * 60)
            let later = try await client.signIn(Agent(), AuthRequest())
            #expect(later.status == .seeOther)
        }
    }

    @Test func successful_login_sets_a_hardened_session_cookie() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let r = try await client.signIn(agent, AuthRequest())
            #expect(r.status == .seeOther)
            let cookie = try #require(r.setCookies.first { $0.hasPrefix("portal_session=") })
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(cookie.contains("Path=/"))
            #expect(r.headers[.cacheControl] == "no-store")
            // The session opens the home page.
            let home = try await client.get("/", agent)
            #expect(home.status == .ok)
            #expect(home.contentType == "text/html; charset=utf-8")
            #expect(home.text.contains("alice"))
        }
    }
}

@Suite struct FirstRunSetup {
    func setupForm(_ client: any TestClientProtocol, _ agent: Agent, token: String) async throws -> String {
        let r = try await client.get("/setup?token=\(token)", agent)
        #expect(r.status == .ok)
        #expect(r.contentType == "text/html; charset=utf-8")
        #expect(r.hiddenInput("token") == token)
        return try #require(r.hiddenInput("csrf"))
    }

    @Test func setup_link_creates_the_first_admin_once() async throws {
        try await withPortal(createUser: false) { p, client in
            let token = try #require(try await p.rt.setup.issueTokenIfNeeded())
            let agent = Agent()
            let csrf = try await setupForm(client, agent, token: token)
            #expect(agent.cookies["portal_browser"] != nil)

            let mismatch = try await client.postForm("/setup", [("csrf", csrf), ("token", token), ("username", "root"),
                                                                ("password", "a long password 1"), ("confirm", "a long password 2")], agent)
            #expect(mismatch.status == .badRequest)
            #expect(mismatch.contentType == "text/html; charset=utf-8")
            #expect(mismatch.alert == "The two passwords differ.")
            #expect(mismatch.hiddenInput("token") == token)
            #expect(agent.cookies["portal_session"] == nil)
            #expect(try await p.rt.storage.adminExists() == false)

            let short = try await client.postForm("/setup", [("csrf", csrf), ("token", token), ("username", "root"),
                                                             ("password", "short"), ("confirm", "short")], agent)
            #expect(short.status == .badRequest)
            #expect(short.alert?.contains("at least 8") == true)

            let noCSRF = try await client.postForm("/setup", [("token", token), ("username", "root"),
                                                              ("password", "a long password 1"), ("confirm", "a long password 1")], agent)
            #expect(noCSRF.status == .forbidden)
            #expect(try await p.rt.storage.adminExists() == false)

            let ok = try await client.postForm("/setup", [("csrf", csrf), ("token", token), ("username", "root"),
                                                          ("password", "a long password 1"), ("confirm", "a long password 1")], agent)
            #expect(ok.status == .seeOther)
            #expect(ok.location == "/")
            #expect(ok.setCookies.contains { $0.hasPrefix("portal_session=") && $0.contains("HttpOnly") })
            let admin = try #require(try await p.rt.storage.user(username: "root"))
            #expect(admin.isAdmin)
            #expect(try await p.rt.storage.adminExists())

            let home = try await client.get("/", agent)
            #expect(home.status == .ok)
            #expect(home.text.contains("root"))

            // The link is spent.
            let reuse = try await client.get("/setup?token=\(token)", agent)
            #expect(reuse.status == .gone)
            #expect(reuse.contentType == "text/html; charset=utf-8")
            #expect(reuse.text.contains("This setup link cannot be used"))
            // The browser id (and with it the CSRF token) was replaced at sign-in: the old token is dead.
            let stale = try await client.postForm("/setup", [("csrf", csrf), ("token", token), ("username", "root2"),
                                                             ("password", "a long password 1"), ("confirm", "a long password 1")], agent)
            #expect(stale.status == .forbidden)
            let fresh = try #require(try await client.get("/login", agent).hiddenInput("csrf"))
            #expect(fresh != csrf)
            let repost = try await client.postForm("/setup", [("csrf", fresh), ("token", token), ("username", "root2"),
                                                              ("password", "a long password 1"), ("confirm", "a long password 1")], agent)
            #expect(repost.status == .gone)
            #expect(try await p.rt.storage.user(username: "root2") == nil)
            // And no new link is issued once an admin exists.
            #expect(try await p.rt.setup.issueTokenIfNeeded() == nil)
        }
    }

    @Test func an_expired_setup_link_is_410() async throws {
        try await withPortal(createUser: false) { p, client in
            let token = try #require(try await p.rt.setup.issueTokenIfNeeded())
            let agent = Agent()
            let csrf = try await setupForm(client, agent, token: token)
            p.clock.advance(p.rt.config.setupLinkLifetime + 1)
            let r = try await client.get("/setup?token=\(token)", agent)
            #expect(r.status == .gone)
            #expect(r.contentType == "text/html; charset=utf-8")
            #expect(r.text.contains("This setup link cannot be used"))
            let post = try await client.postForm("/setup", [("csrf", csrf), ("token", token), ("username", "root"),
                                                            ("password", "a long password 1"), ("confirm", "a long password 1")], agent)
            #expect(post.status == .gone)
            #expect(try await p.rt.storage.adminExists() == false)
        }
    }

    @Test func an_unknown_setup_token_is_410() async throws {
        try await withPortal(createUser: false) { _, client in
            for t in ["", "nope", SystemRandom().token()] {
                let r = try await client.get("/setup?token=\(t)")
                #expect(r.status == .gone)
            }
        }
    }
}

@Suite struct PageHeaders {
    func checkHeaders(_ r: TestResponse, cacheControl: String = "no-store") {
        let csp = r.headers[.contentSecurityPolicy] ?? ""
        #expect(!csp.isEmpty)
        #expect(!csp.contains("unsafe-inline"))
        #expect(!csp.contains("unsafe-eval"))
        #expect(csp.contains("frame-ancestors 'none'"))
        #expect(r.headers[.xContentTypeOptions] == "nosniff")
        #expect(r.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
        #expect(!(r.headers[HTTPField.Name("X-Request-Id")!] ?? "").isEmpty)
        #expect(r.headers[.cacheControl] == cacheControl)
        #expect(r.headers[.strictTransportSecurity] == nil, "no HSTS over plain http")
    }

    @Test func pages_carry_security_headers() async throws {
        try await withPortal { _, client in
            let login = try await client.get("/login")
            #expect(login.status == .ok)
            #expect(login.contentType == "text/html; charset=utf-8")
            checkHeaders(login, cacheControl: "no-store")
            // No inline script or style that the CSP would block.
            #expect(!login.text.contains("<script>"))
            #expect(!login.text.contains("style=\""))

            let authorizeError = try await client.get("/authorize?client_id=nobody&redirect_uri=x")
            checkHeaders(authorizeError)
            let token = try await client.token([("grant_type", "nope")])
            #expect(!(token.headers[HTTPField.Name("X-Request-Id")!] ?? "").isEmpty)
            #expect(token.headers[.xContentTypeOptions] == "nosniff")
        }
    }

    @Test func error_pages_show_the_request_id() async throws {
        try await withPortal { _, client in
            let r = try await client.get("/authorize?client_id=nobody&redirect_uri=x")
            #expect(r.status == .badRequest)
            let id = try #require(r.headers[HTTPField.Name("X-Request-Id")!])
            #expect(r.text.contains(id))

            let expired = try await client.get("/login?req=unknown")
            #expect(expired.status == .badRequest)
            let id2 = try #require(expired.headers[HTTPField.Name("X-Request-Id")!])
            #expect(id2 != id)
            #expect(expired.text.contains(id2))
        }
    }

    @Test func unknown_paths_get_a_404_page_with_headers_and_request_id() async throws {
        try await withPortal { _, client in
            let r = try await client.get("/no/such/page")
            #expect(r.status == .notFound)
            #expect(r.contentType == "text/html; charset=utf-8")
            checkHeaders(r)
            let id = try #require(r.headers[HTTPField.Name("X-Request-Id")!])
            #expect(r.text.contains(id))
        }
    }

    @Test func https_issuer_gets_hsts_and_host_prefixed_secure_cookies() async throws {
        try await withPortal(configure: { $0.issuer = "https://portal.example.com" }) { _, client in
            let r = try await client.get("/login")
            #expect(r.headers[.strictTransportSecurity]?.hasPrefix("max-age=") == true)
            let cookie = try #require(r.setCookies.first)
            #expect(cookie.hasPrefix("__Host-portal_browser="))
            #expect(cookie.contains("; Secure"))
            #expect(cookie.contains("Path=/"))
            #expect(!cookie.contains("Domain="))
        }
    }
}
