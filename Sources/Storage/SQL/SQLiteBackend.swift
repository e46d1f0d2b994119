import Foundation
import Logging
import SQLKit
import SQLiteKit

/// The embedded default: one SQLite file in WAL mode, one connection, statements serialized.
/// Other processes (the CLI) may use the same file at the same time; `busy_timeout` makes
/// them wait for each other's write transactions instead of failing.
public final class SQLiteBackend: SQLBackend {
    public let flavor = SQLFlavor.sqlite
    let connection: SQLiteConnection
    let db: any SQLDatabase
    let mutex = AsyncMutex()
    public let path: String

    public static func open(path: String, logger: Logger) async throws -> SQLiteBackend {
        let conn = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let backend = SQLiteBackend(connection: conn, path: path)
        let db = backend.db
        _ = try await db.raw("PRAGMA journal_mode=WAL").all()
        try await db.raw("PRAGMA busy_timeout=10000").run()
        try await db.raw("PRAGMA synchronous=NORMAL").run()
        try await db.raw("PRAGMA foreign_keys=ON").run()
        return backend
    }

    init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.db = connection.sql(queryLogLevel: .trace)
        self.path = path
    }

    public func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let db = self.db
        return try await mutex.withLock {
            // IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading.
            try await db.raw("BEGIN IMMEDIATE").run()
            do {
                let r = try await body(db)
                try await db.raw("COMMIT").run()
                return r
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    public func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let db = self.db
        return try await mutex.withLock { try await body(db) }
    }

    public func close() async throws {
        try await mutex.withLock { try await self.connection.close() }
    }
}
