import Crypto
import Foundation
import IdP
import Logging
import Storage
import Testing

/// A fast stand-in for bcrypt (which lives in the Portal target): salted SHA-256.
struct FakeHasher: PasswordHasher {
    let verifications = Counter()

    func hash(_ password: String) async throws -> String { "fake$" + Secrets.sha256Hex("pepper\u{0}" + password) }

    func verify(_ password: String, hash: String) async -> Bool {
        await verifications.increment()
        return Secrets.constantTimeEqual(hash, "fake$" + Secrets.sha256Hex("pepper\u{0}" + password))
    }
}

actor Counter {
    private(set) var value = 0
    func increment() { value += 1 }
}

/// Who calls the token endpoint, and how it authenticates.
enum Caller: Sendable {
    /// The public client, identified by `client_id` in the body.
    case cli
    /// The confidential client, with `client_secret_basic`.
    case web
    /// The confidential client, with `client_secret_post`.
    case webPost

    var clientID: String { self == .cli ? Harness.cliID : Harness.webID }
    var redirectURI: String { self == .cli ? Harness.cliRedirect : Harness.webRedirect }
}

/// A provider wired like production — real SQLStorage on a temp SQLite file, real keys and
/// tokens — with a manual clock and a fast password hasher.
struct Harness: Sendable {
    static let issuer = "https://portal.example.com"
    static let cliID = "cli"
    static let cliRedirect = "http://127.0.0.1:8000/callback"
    static let webID = "web"
    static let webRedirect = "https://app.example.com/callback"
    static let webSecret = "web-secret-5f0c2a9e8d7b6a5f4e3d2c1b"
    static let password = "correct horse battery staple"
    static let remote = "192.0.2.10"

    let clock: ManualClock
    let store: any Storage
    let keys: KeyManager
    let provider: Provider
    let users: UserAdmin
    let hasher: FakeHasher
    let authenticator: LocalAuthenticator
    let alice: User
    let random: any RandomSource = SystemRandom()

    /// Quiet: the provider logs every rotation and replay, which the tests provoke on purpose.
    static let logger: Logger = {
        var logger = Logger(label: "portal.idp-tests")
        logger.logLevel = .error
        return logger
    }()

    /// Runs `body` with a fresh harness and removes its database afterwards.
    static func with(algorithm: SigningAlgorithm = .es256, policy: TokenPolicy = TokenPolicy(), keyPolicy: KeyPolicy? = nil,
                     kek: Data? = nil, _ body: (Harness) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-idp-tests", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(UUID().uuidString + ".sqlite").path
        let clock = ManualClock()
        let sql = try await SQLStorage.open(try await SQLiteBackend.open(path: path, logger: logger), now: clock.now())
        do {
            let h = try await make(store: sql, clock: clock, algorithm: algorithm, policy: policy, keyPolicy: keyPolicy, kek: kek)
            try await body(h)
        } catch {
            try? await sql.close()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            throw error
        }
        try? await sql.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    private static func make(store: any Storage, clock: ManualClock, algorithm: SigningAlgorithm, policy: TokenPolicy,
                             keyPolicy: KeyPolicy?, kek: Data?) async throws -> Harness {
        let random = SystemRandom()
        let hasher = FakeHasher()
        let keys = KeyManager(store: store, sealer: try KeySealer(secret: kek), clock: clock, random: random,
                              policy: keyPolicy ?? KeyPolicy(algorithm: algorithm), logger: logger)
        try await keys.maintain()

        let cli = Client(id: cliID, name: "Command line", redirectURIs: [cliRedirect], isPublic: true, secretHash: nil, createdAt: clock.now())
        let web = Client(id: webID, name: "Web app", redirectURIs: [webRedirect], isPublic: false,
                         secretHash: Secrets.hashClientSecret(webSecret, random: random), createdAt: clock.now())
        try await store.createClient(web)  // one client from the database, one from configuration
        let clients = ClientRegistry(configured: [cli], store: store)

        let authenticator = LocalAuthenticator(store: store, hasher: hasher, dummyHash: try await hasher.hash("dummy password"))
        let provider = Provider(issuer: issuer, policy: policy, store: store, clients: clients, keys: keys,
                                authenticators: [authenticator], successorKey: SymmetricKey(size: .bits256), clock: clock,
                                random: random, logger: logger)
        let users = UserAdmin(store: store, hasher: hasher, passwords: PasswordPolicy(), clock: clock, random: random, logger: logger,
                              signout: Signout(provider: provider))
        let alice = try await users.add(username: "alice", password: password, email: "alice@example.com", displayName: "Alice Liddell",
                                        groups: ["dev", "ops"], isAdmin: false, actor: "test")
        return Harness(clock: clock, store: store, keys: keys, provider: provider, users: users, hasher: hasher,
                       authenticator: authenticator, alice: alice)
    }

    // MARK: Authorization endpoint

    static func newVerifier() -> String { SystemRandom().token(byteCount: 32) }

    func authorizationParameters(_ caller: Caller = .cli, redirectURI: String? = nil, scope: String = "openid profile email groups offline_access",
                                 verifier: String? = nil, nonce: String? = "nonce-n-0S6_WzA2Mj", state: String? = "af0ifjsldkj",
                                 extra: [(String, String)] = []) -> FormParameters {
        var pairs: [(String, String)] = [("response_type", "code"), ("client_id", caller.clientID),
                                         ("redirect_uri", redirectURI ?? caller.redirectURI), ("scope", scope)]
        if let state { pairs.append(("state", state)) }
        if let nonce { pairs.append(("nonce", nonce)) }
        if let verifier { pairs += [("code_challenge", PKCE.s256(verifier)), ("code_challenge_method", "S256")] }
        return FormParameters(pairs + extra)
    }

    /// Validates the request, issues a code for `user` and returns it, read from the redirect.
    func authorize(_ parameters: FormParameters, user: User? = nil, authTime: Date? = nil) async throws -> String {
        let check = try await provider.checkAuthorization(parameters)
        guard case .valid(let request) = check else {
            Issue.record("authorization request refused: \(check)")
            throw OAuthError.invalidRequest("refused")
        }
        let at = authTime ?? clock.now()
        let session = LoginSession(hash: Secrets.sha256Hex(random.token()), sid: "browser-session-1", userID: (user ?? alice).id, authTime: at,
                                   authMethod: "password", createdAt: at, expiresAt: at + 3600)
        try await store.createSession(session)
        let redirect = try await provider.issueCode(for: request, session: session, remoteAddress: Self.remote)
        let query = try #require(URLComponents(string: redirect)?.queryItems)
        #expect(redirect.hasPrefix(request.redirectURI + "?"))
        #expect(query.first { $0.name == "iss" }?.value == Self.issuer)
        #expect(query.first { $0.name == "state" }?.value == request.state)
        return try #require(query.first { $0.name == "code" }?.value)
    }

    // MARK: Token endpoint

    static func basic(_ id: String, _ secret: String) -> String {
        "Basic " + Data((FormParameters.escape(id) + ":" + FormParameters.escape(secret)).utf8).base64EncodedString()
    }

    func token(_ pairs: [(String, String)], as caller: Caller) async throws(OAuthError) -> TokenResponse {
        switch caller {
        case .cli:
            return try await provider.token(FormParameters(pairs + [("client_id", Self.cliID)]), authorizationHeader: nil, remoteAddress: Self.remote)
        case .web:
            return try await provider.token(FormParameters(pairs), authorizationHeader: Self.basic(Self.webID, Self.webSecret), remoteAddress: Self.remote)
        case .webPost:
            return try await provider.token(FormParameters(pairs + [("client_id", Self.webID), ("client_secret", Self.webSecret)]),
                                            authorizationHeader: nil, remoteAddress: Self.remote)
        }
    }

    func exchange(_ code: String, verifier: String?, as caller: Caller = .cli, redirectURI: String? = nil,
                  extra: [(String, String)] = []) async throws(OAuthError) -> TokenResponse {
        var pairs = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI ?? caller.redirectURI)]
        if let verifier { pairs.append(("code_verifier", verifier)) }
        return try await token(pairs + extra, as: caller)
    }

    func refresh(_ refreshToken: String, as caller: Caller = .cli, extra: [(String, String)] = []) async throws(OAuthError) -> TokenResponse {
        try await token([("grant_type", "refresh_token"), ("refresh_token", refreshToken)] + extra, as: caller)
    }

    /// The whole browser flow for `caller`: authorize, issue a code, exchange it.
    func signIn(_ caller: Caller = .cli, user: User? = nil, nonce: String? = "nonce-n-0S6_WzA2Mj",
                scope: String = "openid profile email groups offline_access") async throws -> TokenResponse {
        let verifier = Self.newVerifier()
        let code = try await authorize(authorizationParameters(caller, scope: scope, verifier: verifier, nonce: nonce), user: user)
        return try await exchange(code, verifier: verifier, as: caller)
    }

    // MARK: JWTs

    /// Verifies `jwt` against the published keys and returns its claims.
    func claims(_ jwt: String) async throws -> [String: Any] {
        let verified = try JWS.verify(jwt, keys: keys.verificationKeys())
        return try #require(try JSONSerialization.jsonObject(with: verified.payload) as? [String: Any])
    }

    static func header(_ jwt: String) throws -> [String: Any] {
        let first = try #require(jwt.split(separator: ".").first)
        let bytes = try #require(Base64URL.decode(first))
        return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// The kids in the JWKS document.
    func publishedKids() async throws -> [String] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(keys.jwks().utf8)) as? [String: Any])
        let list = try #require(doc["keys"] as? [[String: Any]])
        return list.compactMap { $0["kid"] as? String }
    }

    func auditEvents(type: String) async throws -> [AuditEvent] {
        try await store.auditEvents(AuditQuery(type: type))
    }
}
