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
    func close() async throws
}

/// A FIFO async mutex: one holder at a time, waiters resumed in order.
actor AsyncMutex {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !locked { locked = true; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty { locked = false } else { waiters.removeFirst().resume() }
    }

    func withLock<R: Sendable>(_ body: @Sendable () async throws -> R) async throws -> R {
        await lock()
        do {
            let r = try await body()
            unlock()
            return r
        } catch {
            unlock()
            throw error
        }
    }
}
