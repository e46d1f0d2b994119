import Foundation
import IdP
import SQLKit

/// Writes batches of refresh-token rotations for `RotationBatcher`: on SQLite one transaction for
/// the batch (one lock round and one commit), on PostgreSQL one prepared statement for the batch
/// (one round trip, one commit). A batch that fails because of one request's own data (a successor
/// that already exists) is written again one request at a time, so only that request fails.
struct RotationWriter: Sendable {
    let backend: any SQLBackend

    /// SQLite writes rotations through its own statements (`SQLiteBackend.rotate`).
    private var sqlite: SQLiteBackend {
        get throws {
            guard let b = backend as? SQLiteBackend else { throw StorageError.unavailable("no SQLite backend for this rotation") }
            return b
        }
    }

    func write(_ batch: [RotationRequest]) async -> [Result<RefreshRotation, any Error>] {
        if batch.count == 1 { return [await one(batch[0])] }
        do {
            return try await together(batch)
        } catch {
            guard Self.retriesAlone(error) else { return batch.map { _ in .failure(error) } }
            var out: [Result<RefreshRotation, any Error>] = []
            for r in batch { out.append(await one(r)) }
            return out
        }
    }

    /// A failure that one request's own data can cause (a constraint), or that PostgreSQL asks to
    /// retry (a deadlock between two batches locking the same rows in different orders, 40P01;
    /// a serialization failure, 40001 — by SQLSTATE, which the translated message starts with):
    /// the batch is written again one request at a time. Anything else (the database down, a full
    /// disk) fails every request of the batch at once.
    static func retriesAlone(_ error: any Error) -> Bool {
        guard let e = error as? StorageError else { return false }
        return e.isConflict || e.postgresAsksForARetry
    }

    private func one(_ r: RotationRequest) async -> Result<RefreshRotation, any Error> {
        if backend.flavor == .postgres {
            do {
                // One statement, rolled back whole if PostgreSQL picks it as a deadlock's victim: run again.
                return await settled([r], try await translated { try await retryingWhenPostgresAsks { try await PostgresRotation.one(r, backend: backend) } })[0]
            } catch { return .failure(error) }
        }
        return await Self.result { try await translated { try await sqlite.rotate([r])[0] } }
    }

    /// Throws only when the batch as a whole failed (nothing of it committed).
    private func together(_ batch: [RotationRequest]) async throws -> [Result<RefreshRotation, any Error>] {
        if backend.flavor == .postgres {
            return await settled(batch, try await translated { try await PostgresRotation.many(batch, backend: backend) })
        }
        return try await translated { try await sqlite.rotate(batch).map { .success($0) } }
    }

    /// PostgreSQL's answers made final, after the commit: a request that lost to a rotation committed
    /// after the statement's snapshot was taken (no winner, no `used_at` seen) reads the token again —
    /// and if that read fails, only that request fails (the others' rotations are committed).
    private func settled(_ batch: [RotationRequest], _ outcomes: [PostgresRotation.Outcome]) async -> [Result<RefreshRotation, any Error>] {
        var out: [Result<RefreshRotation, any Error>] = []
        out.reserveCapacity(batch.count)
        for (r, o) in zip(batch, outcomes) {
            switch o {
            case .unknown: out.append(.success(.notFound))
            case .won: out.append(.success(.rotated))
            case .usedAt(let usedAt): out.append(.success(.alreadyUsed(usedAt: Date(timeIntervalSince1970: TimeInterval(usedAt)))))
            case .lost:
                out.append(await Self.result {
                    let again = try await translated {
                        try await backend.read { db in try await db.raw("SELECT used_at FROM refresh_tokens WHERE hash = \(bind: r.hash)").first() }
                    }
                    guard let again, let usedAt = try again.od("used_at") else { return .notFound }
                    return .alreadyUsed(usedAt: usedAt)
                })
            }
        }
        return out
    }

    private func translated<R>(_ body: () async throws -> R) async throws -> R { try await SQLStorage.translating(body) }

    private static func result<R>(_ body: () async throws -> R) async -> Result<R, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }
}
