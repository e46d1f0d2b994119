import Foundation
import IdP
import Logging
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

    let name: String
    let make: @Sendable () async throws -> Instance

    var testDescription: String { name }

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
        // PostgreSQL goes here: when the environment variable PORTAL_TEST_POSTGRES_URL is set
        // (e.g. postgres://portal:portal@127.0.0.1:5432/portal_test), also return a Backend whose
        // `make` connects, creates a throw-away schema and runs `SQLStorage.open` on it, and whose
        // `dispose` drops that schema:
        //
        //     if let url = ProcessInfo.processInfo.environment["PORTAL_TEST_POSTGRES_URL"] { return [sqlite, postgres(url)] }
        //
        // No test needs to change.
        [sqlite]
    }

    /// The embedded default: a fresh SQLite file (WAL) per test.
    static let sqlite = Backend(name: "SQLite") {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-storage-tests", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(UUID().uuidString + ".sqlite").path
        let backend = try await SQLiteBackend.open(path: path, logger: Logger(label: "portal.storage-tests"))
        let store = try await SQLStorage.open(backend, now: Fixture.t0)
        return Backend.Instance(store: store) {
            try? await store.close()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
    }
}
