import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Logging
import Storage
import Templates
import Testing
@testable import Portal

// The real application router, a real SQLite database in a fresh directory, a manual clock,
// and a fast password hasher (bcrypt is deliberately slow). Requests go through
// `app.test(.router)`: every middleware and route, no sockets.

/// Stands in for bcrypt in tests.
struct FastHasher: PasswordHasher {
    func hash(_ password: String) async throws -> String { "test$" + Secrets.sha256Hex(password) }
    func verify(_ password: String, hash: String) async -> Bool {
        Secrets.constantTimeEqual("test$" + Secrets.sha256Hex(password), hash)
    }
}

enum Fixture {
    /// A confidential client (client_secret_basic / client_secret_post).
    static let webappID = "webapp"
    static let webappSecret = "webapp-secret-0123456789abcdef"
    static let webappRedirect = "https://app.example.com/callback"
    /// A public client registered in the database.
    static let cliID = "cli"
    static let cliRedirect = "http://127.0.0.1:9000/cb"
    /// The built-in public client stock kubectl uses.
    static let kubectlID = "kubernetes"
    static let kubectlRedirect = "http://localhost:8000"

    static let username = "alice"
    static let password = "correct horse battery staple"
}

struct TestPortal: Sendable {
    let rt: Runtime
    let clock: ManualClock
    let alice: User
    var issuer: String { rt.config.issuer }

    func familyCount() async throws -> Int { try await rt.storage.activeFamilies(userID: nil, now: clock.now()).count }
    func auditCount(_ type: String) async throws -> Int { try await rt.storage.auditEvents(AuditQuery(type: type, limit: 1000)).count }
}

func testLogger() -> Logger {
    var logger = Logger(label: "portal-tests")
    logger.logLevel = .error
    return logger
}

/// Opens a runtime on a fresh data directory, registers the test clients and user, and runs
/// `body` against the real router. The runtime is always closed (SQLite asserts otherwise).
func withPortal(configure: (inout PortalConfig) -> Void = { _ in }, createUser: Bool = true,
                _ body: @Sendable (TestPortal, any TestClientProtocol) async throws -> Void) async throws {
    let logger = testLogger()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-tests-\(UUID().uuidString)")
    var config = PortalConfig()
    config.dataDir = dir.path
    configure(&config)
    let clock = ManualClock(Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
    let rt = try await Runtime.open(config: config, clock: clock, random: SystemRandom(), hasher: FastHasher(), logger: logger)
    do {
        try await rt.keys.maintain()
        let now = clock.now()
        try await rt.storage.createClient(Client(id: Fixture.webappID, name: "Web App", redirectURIs: [Fixture.webappRedirect],
                                                 isPublic: false,
                                                 secretHash: Secrets.hashClientSecret(Fixture.webappSecret, random: SystemRandom()),
                                                 createdAt: now))
        try await rt.storage.createClient(Client(id: Fixture.cliID, name: "CLI", redirectURIs: [Fixture.cliRedirect],
                                                 isPublic: true, secretHash: nil, createdAt: now))
        var alice = User(id: "none", username: "none", createdAt: now)
        if createUser {
            alice = try await rt.users.add(username: Fixture.username, password: Fixture.password, email: "alice@example.com",
                                           displayName: "Alice Example", groups: ["developers", "ops"], isAdmin: false, actor: "test")
        }
        let router = buildRouter(runtime: rt, pages: try Pages.load(), assets: StaticAssets.load(configured: nil, logger: logger))
        let app = Application(router: router, logger: logger)
        let portal = TestPortal(rt: rt, clock: clock, alice: alice)
        try await app.test(.router) { client in try await body(portal, client) }
    } catch {
        await rt.close()
        try? FileManager.default.removeItem(at: dir)
        throw error
    }
    await rt.close()
    try? FileManager.default.removeItem(at: dir)
}

// MARK: - A browser: a cookie jar

final class Agent {
    var cookies: [String: String] = [:]

    var cookieHeader: String? {
        cookies.isEmpty ? nil : cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
    }

    func absorb(_ r: TestResponse) {
        for sc in r.headers[values: .setCookie] {
            guard let first = sc.split(separator: ";", maxSplits: 1).first else { continue }
            let kv = first.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { continue }
            if kv[1].isEmpty || sc.contains("Max-Age=0") { cookies[String(kv[0])] = nil } else { cookies[String(kv[0])] = String(kv[1]) }
        }
    }
}

// MARK: - Requests

extension TestClientProtocol {
    func get(_ uri: String, _ agent: Agent? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        if let c = agent?.cookieHeader { h[.cookie] = c }
        let r = try await execute(uri: uri, method: .get, headers: h)
        agent?.absorb(r)
        return r
    }

    func postForm(_ uri: String, _ params: [(String, String)], _ agent: Agent? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/x-www-form-urlencoded"
        if let c = agent?.cookieHeader { h[.cookie] = c }
        let r = try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: FormParameters.encode(params)))
        agent?.absorb(r)
        return r
    }

    func token(_ params: [(String, String)], headers: HTTPFields = [:]) async throws -> TestResponse {
        try await postForm("/token", params, headers: headers)
    }

    /// authorize → login page → login form; returns the response to the form post.
    func signIn(_ agent: Agent, _ req: AuthRequest, username: String = Fixture.username,
                password: String = Fixture.password) async throws -> TestResponse {
        let a = try await get(req.uri, agent)
        #expect(a.status == .found)
        let loginURI = try #require(a.location)
        try #require(loginURI.hasPrefix("/login?req="))
        #expect(agent.cookies["portal_browser"] != nil)
        let page = try await get(loginURI, agent)
        #expect(page.status == .ok)
        let csrf = try #require(page.hiddenInput("csrf"))
        let reqID = String(loginURI.dropFirst("/login?req=".count))
        return try await postForm("/login", [("csrf", csrf), ("req", reqID), ("username", username), ("password", password)], agent)
    }

    /// The whole browser part of the code flow; returns the code the client receives.
    func authorizationCode(_ p: TestPortal, _ agent: Agent = Agent(), _ req: AuthRequest) async throws -> String {
        let r = try await signIn(agent, req)
        #expect(r.status == .seeOther)
        let location = try #require(r.location)
        try #require(location.hasPrefix(req.redirectURI + "?"))
        let q = try #require(queryOf(location))
        #expect(q["state"] == req.state)
        #expect(q["iss"] == p.issuer)
        return try #require(q["code"])
    }

    /// Redeems a code with the request's verifier; authentication as given.
    func redeem(_ code: String, _ req: AuthRequest, auth: ClientAuth? = nil, extra: [(String, String)] = []) async throws -> TestResponse {
        var params = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", req.redirectURI)]
        if let v = req.verifier { params.append(("code_verifier", v)) }
        let (authParams, headers) = (auth ?? .none(req.clientID)).apply()
        return try await token(params + authParams + extra, headers: headers)
    }

    func refresh(_ token: String, auth: ClientAuth) async throws -> TestResponse {
        let (authParams, headers) = auth.apply()
        return try await self.token([("grant_type", "refresh_token"), ("refresh_token", token)] + authParams, headers: headers)
    }

    /// Signs in and redeems: the token response JSON.
    func tokens(_ p: TestPortal, _ req: AuthRequest = AuthRequest(), auth: ClientAuth? = nil) async throws -> [String: Any] {
        let code = try await authorizationCode(p, Agent(), req)
        let r = try await redeem(code, req, auth: auth)
        try #require(r.status == .ok, "\(r.text)")
        return try r.json()
    }
}

enum ClientAuth {
    case none(String)
    case basic(String, String)
    case post(String, String)

    static let webapp = ClientAuth.basic(Fixture.webappID, Fixture.webappSecret)

    func apply() -> ([(String, String)], HTTPFields) {
        switch self {
        case .none(let id): return ([("client_id", id)], [:])
        case .basic(let id, let secret):
            let raw = FormParameters.escape(id) + ":" + FormParameters.escape(secret)
            return ([], [.authorization: "Basic " + Data(raw.utf8).base64EncodedString()])
        case .post(let id, let secret): return ([("client_id", id), ("client_secret", secret)], [:])
        }
    }
}

struct AuthRequest {
    var clientID = Fixture.kubectlID
    var redirectURI = Fixture.kubectlRedirect
    var scope = "openid profile email groups offline_access"
    var state: String? = SystemRandom().token(byteCount: 12)
    var nonce: String? = SystemRandom().token(byteCount: 12)
    var verifier: String? = SystemRandom().token(byteCount: 48)
    var challengeMethod: String? = "S256"
    var extra: [(String, String)] = []

    static func webapp() -> AuthRequest {
        var r = AuthRequest()
        r.clientID = Fixture.webappID
        r.redirectURI = Fixture.webappRedirect
        return r
    }

    static func cli() -> AuthRequest {
        var r = AuthRequest()
        r.clientID = Fixture.cliID
        r.redirectURI = Fixture.cliRedirect
        return r
    }

    var pairs: [(String, String)] {
        var p = [("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope)]
        if let state { p.append(("state", state)) }
        if let nonce { p.append(("nonce", nonce)) }
        if let verifier { p.append(("code_challenge", PKCE.s256(verifier))) }
        if let challengeMethod { p.append(("code_challenge_method", challengeMethod)) }
        return p + extra
    }

    var uri: String { "/authorize?" + FormParameters.encode(pairs) }
}

// MARK: - Responses

extension TestResponse {
    var text: String { String(decoding: body.readableBytesView, as: UTF8.self) }
    var location: String? { headers[.location] }
    var contentType: String? { headers[.contentType] }
    var setCookies: [String] { headers[values: .setCookie] }

    func json() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// The value of a hidden form input (values here are base64url: no escaping to undo).
    func hiddenInput(_ name: String) -> String? {
        let marker = #"name="\#(name)" value=""#
        guard let r = text.range(of: marker) else { return nil }
        let rest = text[r.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    /// The text of the page's alert box.
    var alert: String? {
        guard let r = text.range(of: #"<div class="alert" role="alert">"#) else { return nil }
        let rest = text[r.upperBound...]
        guard let end = rest.range(of: "</div>") else { return nil }
        return String(rest[..<end.lowerBound])
    }
}

func queryOf(_ uri: String) -> FormParameters? {
    guard let q = uri.firstIndex(of: "?") else { return nil }
    return FormParameters.parse(String(uri[uri.index(after: q)...]))
}

func jwtPart(_ token: String, _ index: Int) throws -> [String: Any] {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    try #require(parts.count == 3)
    let bytes = try #require(Base64URL.decode(parts[index]))
    return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
}

/// The same JWS with one character of its signature changed.
func tamperedSignature(_ jws: String) -> String {
    var chars = Array(jws)
    let sigStart = (jws.lastIndex(of: ".").map { jws.distance(from: jws.startIndex, to: $0) } ?? 0) + 1
    let i = sigStart + (chars.count - sigStart) / 2
    chars[i] = chars[i] == "A" ? "B" : "A"
    return String(chars)
}
