import Foundation
import IdP
import Logging
import SQLKit
import Storage
import Testing

/// One storage implementation the conformance suite runs against.
///
/// Every test in this target is parameterized over `Backends.all`, so a new backend runs
/// the whole suite unchanged: add it to `Backends.all` and nothing else.
struct Backend: Sendable, CustomTestStringConvertible {
    /// A fresh, empty, migrated store and what to do with it when the test ends.
    struct Instance: Sendable {
        let store: any Storage
        let dispose: @Sendable () async -> Void
    }

    /// A fresh, empty database with no schema yet, and what to do with it when the test ends.
    struct Empty: Sendable {
        let backend: any SQLBackend
        let dispose: @Sendable () async -> Void
    }

    let name: String
    let makeEmpty: @Sendable () async throws -> Empty

    var testDescription: String { name }

    /// A fresh, empty, migrated store.
    func make() async throws -> Instance {
        let empty = try await makeEmpty()
        do {
            return Instance(store: try await SQLStorage.open(empty.backend, now: Fixture.t0), dispose: empty.dispose)
        } catch {
            await empty.dispose()
            throw error
        }
    }

    /// Runs `body` against a fresh database without any schema (for migration tests).
    func withEmptyDatabase(_ body: (any SQLBackend) async throws -> Void) async throws {
        let empty = try await makeEmpty()
        do {
            try await body(empty.backend)
            await empty.dispose()
        } catch {
            await empty.dispose()
            throw error
        }
    }

    /// Runs `body` against a fresh store and disposes of it afterwards, also when `body` throws.
    func withStore(_ body: (any Storage) async throws -> Void) async throws {
        let instance = try await make()
        do {
            try await body(instance.store)
            await instance.dispose()
        } catch {
            await instance.dispose()
            throw error
        }
    }
}

enum Backends {
    static var all: [Backend] {
        // PostgreSQL joins when PORTAL_TEST_POSTGRES_URL names a server (scripts/test.sh starts a
        // private one on loopback); every test then runs on both engines, unchanged.
        if let url = ProcessInfo.processInfo.environment["PORTAL_TEST_POSTGRES_URL"], !url.isEmpty {
            return [sqlite, sqliteServing, postgres(url)]
        }
        return [sqlite, sqliteServing]
    }

    /// A real PostgreSQL: a fresh database per test, dropped afterwards.
    /// `poolSize`: tests that hold connections on purpose (two transactions waiting for each other) need
    /// more than the loops' shares of four — off an event loop a test takes any loop's pool.
    static func postgres(_ url: String, poolSize: Int = 4) -> Backend {
        Backend(name: "PostgreSQL") {
            // Swift Testing starts every test at once: without a bound, their pools together asked
            // for more than max_connections (400) and the server refused some ("too many clients").
            await PostgresSlots.shared.acquire()
            let logger = Logger(label: "portal.storage-tests")
            // Many tests open pools at once on two cores: the conformance suite tests semantics, not
            // outages, so connections may take their time here, and each pool stays small (five
            // connections a test; with eight, parallel tests ran into max_connections = 400).
            let admin: PostgresBackend
            do { admin = try await PostgresBackend.open(.init(url: url, poolSize: 1, acquireTimeout: .seconds(60)), logger: logger) } catch {
                await PostgresSlots.shared.release()
                throw error
            }
            let name = "portal_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
            let drop: @Sendable () async -> Void = {
                try? await admin.run { db in try await db.raw("DROP DATABASE IF EXISTS \(unsafeRaw: String(name)) WITH (FORCE)").run() }
                try? await admin.close()
                await PostgresSlots.shared.release()
            }
            do {
                try await admin.run { db in try await db.raw("CREATE DATABASE \(unsafeRaw: String(name))").run() }
                var c = URLComponents(string: url)!
                c.path = "/" + name
                let backend = try await PostgresBackend.open(.init(url: c.string!, poolSize: poolSize, acquireTimeout: .seconds(60)), logger: logger)
                return Backend.Empty(backend: backend) {
                    try? await backend.close()
                    await drop()
                }
            } catch {
                await drop()
                throw error
            }
        }
    }

    /// The embedded default: a fresh SQLite file (WAL) per test, as the CLI opens it.
    static let sqlite = sqlite(serving: false)
    /// As `portal serve` opens it: reads on separate connections, checkpoints in the background.
    static let sqliteServing = sqlite(serving: true)

    static func sqlite(serving: Bool) -> Backend { Backend(name: serving ? "SQLite (serving)" : "SQLite") {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-storage-tests", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(UUID().uuidString + ".sqlite").path
        let backend = try await SQLiteBackend.open(path: path, logger: Logger(label: "portal.storage-tests"), serving: serving)
        return Backend.Empty(backend: backend) {
            try? await backend.close()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
    } }
}

/// At most `limit` PostgreSQL test databases open at once (each holds a pool of four connections
/// and an admin one); the others wait their turn.
actor PostgresSlots {
    static let shared = PostgresSlots(limit: 24)
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { free = limit }

    func acquire() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}
