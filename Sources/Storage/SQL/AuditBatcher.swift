import Foundation
import IdP
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SQLKit

/// Group commit for audit events written on their own (a credential exchange, a login, an admin
/// action; a refresh's event commits inside its rotation): events appended while a write is in
/// flight are written together next, in one commit (one WAL flush), in the order they arrived. Each caller still returns only once its own event is committed, or with the error that
/// kept its batch from committing. Nothing waits on purpose: an event that finds no write in flight is
/// written at once.
final class AuditBatcher: Sendable {
    typealias Write = @Sendable ([AuditEvent]) async throws -> Void

    private struct Waiter {
        let event: AuditEvent
        let done: CheckedContinuation<Void, any Error>
        /// The event loop the caller appended from (nil off NIO's threads): it resumes there.
        let loop: (any EventLoop)?
    }

    private struct State {
        var waiting: [Waiter] = []
        /// Writes in flight, and when the latest began.
        var flight = BatchLanes()
        var batches = 0
        var events = 0
        var largest = 0
    }

    let maxBatch: Int
    /// Writes that may be in flight at once: 1 on SQLite (one writer anyway); on PostgreSQL a further
    /// one opens when an event arrives and no write has begun for `stall` (a write stuck on a lock or a
    /// slow flush holds up the events behind it no longer than that).
    let lanes: Int
    let stall: Duration
    /// Where batches are written from (SQLite: its writer thread, so a batch costs no hop there).
    let executor: (any TaskExecutor)?
    private let write: Write
    private let state = NIOLockedValueBox(State())

    init(maxBatch: Int = 128, lanes: Int = 1, stall: Duration = RotationBatcher.stall, executor: (any TaskExecutor)? = nil,
         write: @escaping Write) {
        self.maxBatch = max(1, maxBatch)
        self.lanes = max(1, lanes)
        self.stall = stall
        self.executor = executor
        self.write = write
    }

    func append(_ event: AuditEvent) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let start = state.withLockedValue { s -> Bool in
                s.waiting.append(Waiter(event: event, done: done, loop: MultiThreadedEventLoopGroup.currentEventLoop))
                return s.flight.open(lanes: lanes, spread: stall)
            }
            // A task of its own writes, never the caller's: a caller whose task is cancelled (its
            // client went away) must not cut short the batch that carries other callers' events.
            if start { Task(executorPreference: executor) { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { s -> [Waiter]? in
                if s.waiting.isEmpty { s.flight.inFlight -= 1; return nil }
                s.flight.lastStart = .now
                let out = s.waiting.takeFirst(maxBatch)
                s.batches += 1
                s.events += out.count
                s.largest = max(s.largest, out.count)
                return out
            }
            guard let batch else { return }
            do {
                try await write(batch.map(\.event))
                Self.answer(batch, .success(()))
            } catch {
                // One event's own data must not cost the others theirs: written again one by one.
                guard batch.count > 1 else { Self.answer(batch, .failure(error)); continue }
                for w in batch {
                    do {
                        try await write([w.event])
                        Self.answer([w], .success(()))
                    } catch {
                        Self.answer([w], .failure(error))
                    }
                }
            }
        }
    }

    /// Events waiting for a write.
    var waitingCount: Int { state.withLockedValue { $0.waiting.count } }

    /// Resumes each caller on the event loop it appended from, one hand-off per loop for the batch.
    private static func answer(_ batch: [Waiter], _ result: Result<Void, any Error>) {
        onTheirLoops(batch.map { w in (w.loop, { w.done.resume(with: result) }) })
    }

    /// Batches written, events in them, and the largest batch so far.
    var statistics: (batches: Int, events: Int, largest: Int) {
        state.withLockedValue { ($0.batches, $0.events, $0.largest) }
    }
}

extension SQLStorage {
    /// Writes a batch of audit events, all or nothing, in one commit: on SQLite the writer's one prepared
    /// INSERT stepped per event in a transaction (a statement per batch size would crowd its statement
    /// cache); on PostgreSQL one multi-row INSERT (one round trip).
    static func auditWriter(_ backend: any SQLBackend) -> AuditBatcher.Write {
        if let sqlite = backend as? SQLiteBackend {
            return { events in try await translating { try await sqlite.append(events) } }
        }
        return { events in try await translating { try await backend.run { db in try await insertAudits(events, db) } } }
    }

    /// One INSERT for all of `events` (PostgreSQL's limit of 65,535 binds allows 8,191 rows of 8).
    static func insertAudits(_ events: [AuditEvent], _ db: any SQLDatabase) async throws {
        var sql = SQLQueryString("INSERT INTO audit_events (time, type, actor, subject, client_id, remote_address, success, details_json) VALUES ")
        for (i, e) in events.enumerated() {
            sql.appendInterpolation(unsafeRaw: i == 0 ? "(" : ", (")
            sql.appendInterpolation(bind: t(e.time))
            for v in [e.type, e.actor, e.subject, e.clientID, e.remoteAddress] {
                sql.appendInterpolation(unsafeRaw: ", ")
                sql.appendInterpolation(bind: v)
            }
            sql.appendInterpolation(unsafeRaw: ", ")
            sql.appendInterpolation(bind: e.success ? 1 : 0)
            sql.appendInterpolation(unsafeRaw: ", ")
            sql.appendInterpolation(bind: json(e.details))
            sql.appendInterpolation(unsafeRaw: ")")
        }
        try await db.raw(sql).run()
    }
}
