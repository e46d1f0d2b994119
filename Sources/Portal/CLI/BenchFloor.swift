import ArgumentParser
import Crypto
import Foundation
import Hummingbird
import IdP
import Logging
import NIOCore
import Storage

extension BenchCommand {
    /// What a refresh cannot avoid, measured from outside like a refresh: POST /token on the same
    /// HTTP server (no portal middleware, no client, identity, claims or access token), answering
    /// JSON of a real token response's size with the security headers and `no-store`. Each level
    /// adds one thing every refresh must do:
    ///
    /// - `http`: read and parse the form, answer a new random successor;
    /// - `rotation`: + the durable single-use rotation through the portal's storage (successor,
    ///   family stamp and audit row in one commit, batched as the server batches), issued tokens
    ///   remembered in memory as the server remembers them;
    /// - `sign`: + an id_token-sized JWS signed with a key of `--algorithm`, while the rotation is
    ///   written (as the server does it).
    ///
    /// A real refresh minus `sign` is the portal's own work; `sign` minus `rotation` is the
    /// signature inside a busy process; `rotation` is the floor under "outside the signature".
    /// Writes `--chains` first tokens to `--chains-file` (one per line) for the load generator.
    struct Floor: AsyncParsableCommand {
        enum Level: String, ExpressibleByArgument, CaseIterable { case http, rotation, sign }
        static let configuration = CommandConfiguration(abstract: "Serve POST /token doing only what a refresh cannot avoid (a floor for the benchmark).")
        @Option(help: "host:port to listen on") var listen: String
        @Option(help: "http | rotation | sign") var level: Level
        @Option(help: "RS256 | ES256 (the `sign` level)") var algorithm: String = "RS256"
        @Option(help: "a postgres:// URL (default: a fresh SQLite database in a temporary directory)") var database: String?
        @Option(help: "where to write the first tokens of the chains") var chainsFile: String
        @Option(help: "chains to start") var chains: Int = 16

        func run() async throws {
            _ = EventLoopExecutor.install()
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
                throw ValidationError("--listen takes host:port")
            }
            guard let alg = SigningAlgorithm(rawValue: algorithm) else { throw ValidationError("--algorithm takes RS256 or ES256") }
            var logger = Logger(label: "bench-floor")
            logger.logLevel = .warning
            let random = SystemRandom()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-floor-\(getpid())").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var opened: SQLStorage?
            var heads: [String] = []
            let issued = FloorIssued()
            if level != .http {
                var config = PortalConfig()
                config.databaseURL = database ?? "sqlite://" + dir + "/portal.db"
                let s = try await Runtime.openStorage(config, now: Date(), serving: true, logger: logger)
                heads = try await BenchChains.start(chains, in: s, random: random)
                opened = s
            } else {
                heads = (0..<max(1, chains)).map { _ in random.token() }
            }
            try (heads.joined(separator: "\n") + "\n").write(toFile: chainsFile, atomically: true, encoding: .utf8)

            let storage = opened
            let successorKey = SymmetricKey(size: .bits256)
            let key = level == .sign ? try SigningKey.generate(alg, random: random) : nil
            let shape = FloorShape(algorithm: alg)
            let router = Router()
            router.post("/token") { request, _ -> Response in
                var request = request
                let form: FormParameters
                do { form = try await request.form(limit: 64 * 1024) } catch { return Responses.oauthError(.invalidRequest("malformed form")) }
                guard let token = try? form.required("refresh_token") else { return Responses.oauthError(.invalidRequest("no refresh_token")) }
                // Derived from the token, as the server derives its successor (no system call per request).
                let successor = Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Array(token.utf8), using: successorKey)))
                var idToken = shape.idToken
                if let storage {
                    let hash = Secrets.sha256Hex(token)
                    let found: RefreshFamily?
                    if let f = issued.take(hash) { found = f } else { found = try await storage.refreshToken(hash: hash)?.1 }
                    guard let family = found else { return Responses.oauthError(.invalidGrant("unknown refresh token")) }
                    let t = Date()
                    let next = RefreshToken(hash: Secrets.sha256Hex(successor), familyID: family.id, clientID: "kubernetes",
                                            createdAt: t, idleExpiresAt: t + 86_400)
                    let event = AuditEvent(time: t, type: "token.refresh", actor: "bench", subject: "bench", clientID: "kubernetes",
                                           remoteAddress: "127.0.0.1", details: ["family": family.id])
                    let pending = storage.beginRefreshRotation(hash: hash, now: t, successor: next, audit: event)
                    if let key { idToken = try JWS.sign(payload: shape.claims, key: key, type: "JWT") }
                    guard try await pending.outcome() == .rotated else { return Responses.oauthError(.invalidGrant("not rotated")) }
                    issued.remember(next.hash, family)
                } else if let key {
                    idToken = try JWS.sign(payload: shape.claims, key: key, type: "JWT")
                }
                var response = Responses.json(.ok, shape.answer(refreshToken: successor, idToken: idToken))
                SecurityHeaders.apply(&response.headers, hsts: false)
                return response
            }
            let app = Application(router: router, server: .http1(),
                                  configuration: .init(address: .hostname(String(listen[..<colon]), port: port), serverName: nil),
                                  logger: logger)
            try await app.runService()
            try await storage?.close()
        }
    }
}

/// Issued successors remembered in memory (the server's issued-token memory does the same), so a
/// chain's next refresh needs no read.
final class FloorIssued: @unchecked Sendable {
    private let lock = NSLock()
    private var families: [String: RefreshFamily] = [:]
    func remember(_ hash: String, _ family: RefreshFamily) { lock.withLock { families[hash] = family } }
    func take(_ hash: String) -> RefreshFamily? { lock.withLock { families.removeValue(forKey: hash) } }
}

/// A token response the size of the server's: an access token, an id_token of a user in two
/// groups (claims as the server writes them) and the scope of a kubectl login.
struct FloorShape: Sendable {
    let claims: Data
    let accessToken: String
    let idToken: String

    init(algorithm: SigningAlgorithm) {
        var w = JSONObjectWriter()
        w.add("iss", "http://127.0.0.1:8443")
        w.add("sub", "5f0c6f2e-bench-user-0000-000000000000")
        w.add("aud", "kubernetes")
        w.add("exp", 1_800_000_060)
        w.add("iat", 1_800_000_000)
        w.add("auth_time", 1_800_000_000)
        w.add("sid", "Zm9vYmFyYmF6cXV4cXV1eA")
        w.add("at_hash", "3q2-7wAAAAAAAAAAAAAAAA")
        w.add("amr", ["pwd"])
        w.add("preferred_username", "bench")
        w.add("name", "Bench User")
        w.add("email", "bench@example.org")
        w.add("email_verified", true)
        w.add("groups", ["dev", "ops"])
        claims = w.data
        accessToken = "kpa_" + String(repeating: "a", count: 260) + "." + String(repeating: "b", count: 43)
        let signature = algorithm == .rs256 ? 342 : 86
        idToken = String(repeating: "h", count: 100) + "." + Base64URL.encode(claims) + "." + String(repeating: "s", count: signature)
    }

    func answer(refreshToken: String, idToken: String) -> String {
        TokenResponse(accessToken: accessToken, idToken: idToken, refreshToken: refreshToken, expiresIn: 300,
                      scopes: ["openid", "profile", "email", "groups", "offline_access"], familyID: "", refreshExpiresIn: 86_400).json
    }
}
