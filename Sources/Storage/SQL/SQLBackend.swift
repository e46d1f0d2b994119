import Foundation
import SQLKit

public enum SQLFlavor: Sendable { case sqlite, postgres }

/// How the SQL storage reaches a database: one transaction at a time on one session.
/// SQLite and PostgreSQL each provide one; the queries above are shared.
public protocol SQLBackend: Sendable {
    var flavor: SQLFlavor { get }
    /// Runs `body` in one transaction on one connection: committed if it returns,
    /// rolled back if it throws.
    func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R
    /// Runs `body` on a connection without an explicit transaction (single statements).
    func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R
    /// Runs read-only statements; a backend may use a connection other than the writer's. A
    /// read started after a write committed sees it.
    func read<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R
    func close() async throws
}

extension SQLBackend {
    public func read<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await run(body)
    }
}

/// `begin` (BEGIN, BEGIN IMMEDIATE …), then `body`, then COMMIT — or ROLLBACK when it throws.
/// The one copy of the pattern for both backends and the data copy's read snapshot.
func inTransaction<R: Sendable>(_ db: any SQLDatabase, begin: String = "BEGIN",
                                _ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
    try await db.raw(SQLQueryString(begin)).run()
    do {
        let r = try await body(db)
        try await db.raw("COMMIT").run()
        return r
    } catch {
        try? await db.raw("ROLLBACK").run()
        throw error
    }
}
