import Foundation
import IdP
import Logging
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit
import CoreMetrics

/// PostgreSQL: the path past one machine. A pool of connections; every transaction on one
/// leased connection. Single use holds across replicas because the conditional UPDATEs take
/// row locks: a second redeemer waits for the first to commit, re-checks `used_at IS NULL`,
/// and finds nothing to update.
public final class PostgresBackend: SQLBackend {
    public let flavor = SQLFlavor.postgres
    let client: PostgresClient
    let runner: Task<Void, Never>
    let logger: Logger

    public struct Options: Sendable {
        public var url: String
        public var poolSize: Int = 10
        /// CA for `sslmode=verify-full` (PEM file); system roots when nil.
        public var caFile: String?
        public init(url: String, poolSize: Int = 10, caFile: String? = nil) { self.url = url; self.poolSize = poolSize; self.caFile = caFile }
    }

    public static func open(_ options: Options, logger: Logger) async throws -> PostgresBackend {
        let parsed = try PostgresURL(options.url)
        var tls: PostgresClient.Configuration.TLS = .disable
        switch parsed.sslMode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(try tlsConfiguration(verify: false, caFile: options.caFile))
        case "require": tls = .require(try tlsConfiguration(verify: false, caFile: options.caFile))
        case "verify-ca", "verify-full": tls = .require(try tlsConfiguration(verify: true, caFile: options.caFile ?? parsed.rootCert))
        default: throw StorageURLError("unsupported sslmode '\(parsed.sslMode)' (use disable, prefer, require, verify-ca or verify-full)")
        }
        var config = PostgresClient.Configuration(host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password,
                                                  database: parsed.database, tls: tls)
        config.options.maximumConnections = max(1, options.poolSize)
        config.options.minimumConnections = max(1, options.poolSize)
        config.options.connectTimeout = .seconds(10)
        config.options.keepAliveBehavior = nil
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        let runner = Task { await client.run() }
        await Task.yield()  // let run() start before the first lease
        let backend = PostgresBackend(client: client, runner: runner, logger: logger)
        do {
            try await backend.run { db in _ = try await db.raw("SELECT 1 AS one").first() }
        } catch {
            runner.cancel()
            throw StorageError.unavailable("cannot connect to PostgreSQL at \(parsed.host):\(parsed.port)/\(parsed.database ?? ""): \(Self.describe(error))")
        }
        return backend
    }

    static func tlsConfiguration(verify: Bool, caFile: String?) throws -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        c.minimumTLSVersion = .tlsv12
        if verify {
            c.certificateVerification = .fullVerification
            if let caFile { c.trustRoots = .file(caFile) }
        } else {
            c.certificateVerification = .none
        }
        return c
    }

    init(client: PostgresClient, runner: Task<Void, Never>, logger: Logger) {
        self.client = client; self.runner = runner; self.logger = logger
    }

    public func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        do {
            return try await client.withConnection { conn in
                let db = conn.sql(queryLogLevel: .trace)
                try await db.raw("BEGIN").run()
                do {
                    let r = try await body(db)
                    try await db.raw("COMMIT").run()
                    return r
                } catch {
                    try? await db.raw("ROLLBACK").run()
                    throw error
                }
            }
        } catch { throw Self.translate(error) }
    }

    public func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        do {
            return try await client.withConnection { conn in try await body(conn.sql(queryLogLevel: .trace)) }
        } catch { throw Self.translate(error) }
    }

    public func close() async throws {
        runner.cancel()
    }

    /// Unique violations become `.conflict`; everything else from the server or the network is `.unavailable`.
    static func translate(_ error: any Error) -> any Error {
        if error is StorageError || error is CallerError { return error }
        if let e = error as? PSQLError {
            if e.serverInfo?[.sqlState] != "23505" { Counter(label: "portal_storage_errors_total").increment() }
            if e.serverInfo?[.sqlState] == "23505" { return StorageError.conflict(e.serverInfo?[.message] ?? "unique violation") }
            return StorageError.unavailable(describe(e))
        }
        return error
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let info = e.serverInfo { return "\(info[.sqlState] ?? "") \(info[.message] ?? "")" }
            return "\(e.code)"
        }
        return String(describing: error)
    }
}

struct StorageURLError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]
struct PostgresURL {
    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String?
    var sslMode: String
    var rootCert: String?

    init(_ url: String) throws {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql", let host = c.host, !host.isEmpty else {
            throw StorageURLError("database.url must look like postgres://user:password@host:5432/database")
        }
        self.host = host
        port = c.port ?? 5432
        user = c.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = c.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? nil : path
        let q = Dictionary((c.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        sslMode = q["sslmode"] ?? (["localhost", "127.0.0.1", "::1"].contains(host) ? "disable" : "verify-full")
        rootCert = q["sslrootcert"]
    }
}
