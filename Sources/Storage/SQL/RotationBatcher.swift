import Foundation
import IdP
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One refresh-token rotation to write: mark `hash` used at `now`, store `successor`, stamp the
/// family, write `audit` — all or nothing.
struct RotationRequest: Sendable {
    let hash: String
    let now: Date
    let successor: RefreshToken
    let audit: AuditEvent?
}

/// Group commit for refresh-token rotations: rotations that arrive while another batch is being
/// written wait, and are then written together in one transaction (one statement on PostgreSQL),
/// each still all or nothing and single use. Nothing waits on purpose: a rotation that finds a
/// free lane is written at once, alone or with whatever is already waiting, so an idle portal
/// answers as before (one task hop later) and a busy one pays one commit, one lock round and one
/// round trip for many.
///
/// `lanes` batches may be in flight at once: one on SQLite (one writer anyway); on PostgreSQL up to
/// the refresh writer's connections (1–4), a further one opening only when no batch has started for `spread` (docs/performance.md,
/// seventh steps: four lanes always open made smaller batches, more commits and more CPU per
/// refresh; one lane is best once the writer's answers are read on a thread of their own).
/// `write` answers every request of a batch, in order; a batch that fails as a whole answers every
/// request with that error (the backends redo a batch one by one when one request's own data
/// failed, so one bad rotation never takes others down).
final class RotationBatcher: Sendable {
    typealias Write = @Sendable ([RotationRequest]) async -> [Result<RefreshRotation, any Error>]

    private struct Waiter {
        let request: RotationRequest
        let pending: PendingRefreshRotation
        let since: ContinuousClock.Instant
        /// The event loop the caller queued it from (nil off NIO's threads): its answer goes back there.
        let loop: (any EventLoop)?
    }

    private struct State {
        var waiting: [Waiter] = []
        /// Batches in flight and when the latest started (a further lane opens only once this is `spread` ago).
        var flight = BatchLanes()
        /// Batches written and the requests in them (the tests and the benchmark read these).
        var batches = 0
        var requests = 0
        var largest = 0
        /// A task is watching for the batch in flight to pass `spread` (see `watchForStall`).
        var watching = false
    }

    let lanes: Int
    let maxBatch: Int
    /// A request still waiting for its batch after this long is answered `.unavailable` instead of
    /// written (a database that stopped answering: every request gets its answer in bounded time,
    /// as when each waited for a connection of its own).
    let maxWait: Duration
    /// Where batches are written from (SQLite: its writer thread, so a batch costs no hop there).
    let executor: (any TaskExecutor)?
    private let write: Write
    private let state = NIOLockedValueBox(State())

    /// A further lane opens only when no batch has started for this long (0: whenever one is free).
    let spread: Duration
    /// PostgreSQL's `spread`: longer than a batch normally takes (1–2.5 ms measured on two busy
    /// cores), so one batch is in flight and the next gathers what arrives meanwhile — the fewest
    /// commits and statements; once no batch has started for 5 ms (a row lock held by another
    /// replica, a slow flush), a further lane opens for everything waiting — at the next arrival, or
    /// when the 5 ms are up (`watchForStall`).
    static let stall: Duration = .milliseconds(5)

    init(lanes: Int, maxBatch: Int = 64, maxWait: Duration = .seconds(3), spread: Duration = .zero, executor: (any TaskExecutor)? = nil, write: @escaping Write) {
        self.spread = spread
        self.lanes = max(1, lanes)
        self.maxBatch = max(1, maxBatch)
        self.maxWait = maxWait
        self.executor = executor
        self.write = write
    }

    func rotate(_ request: RotationRequest) async throws -> RefreshRotation {
        try await begin(request).outcome()
    }

    /// Queues `request` and returns at once; the caller awaits `outcome()` when it needs it.
    func begin(_ request: RotationRequest) -> PendingRefreshRotation {
        let pending = PendingRefreshRotation()
        // Queued under the lock that also decides whether a lane is free: a batch finishing
        // meanwhile either takes this request or leaves a lane for it.
        let start = state.withLockedValue { s -> Next in
            s.waiting.append(Waiter(request: request, pending: pending, since: .now, loop: MultiThreadedEventLoopGroup.currentEventLoop))
            if s.flight.open(lanes: lanes, spread: spread) { return .write }
            // A lane is free but a batch started within the spread: watch for it to stall (once).
            guard s.flight.inFlight < lanes, !s.watching else { return .wait }
            s.watching = true
            return .watch
        }
        switch start {
        // A task of its own writes, never the caller's: a request whose task is cancelled (its
        // client went away) must not cut short the batch that carries other clients' rotations.
        case .write: Task(executorPreference: executor) { await self.drain() }
        case .watch: Task(executorPreference: executor) { await self.watchForStall() }
        case .wait: break
        }
        return pending
    }

    private enum Next { case write, watch, wait }

    /// Rotations wait behind a batch in flight: once no batch has started for `spread`, opens a
    /// further lane for them even if nothing else arrives (a stalled batch holds up nobody for longer).
    private func watchForStall() async {
        while true {
            let left = state.withLockedValue { s in spread - (ContinuousClock.now - s.flight.lastStart) }
            if left > .zero { try? await Task.sleep(for: left) }
            let open = state.withLockedValue { s -> Bool? in
                // Nobody waiting, or every lane busy (a lane that finishes takes the waiting): done.
                guard !s.waiting.isEmpty, s.flight.inFlight < lanes else { s.watching = false; return false }
                guard s.flight.open(lanes: lanes, spread: spread) else { return nil }  // a batch started meanwhile: watch on
                s.watching = false
                return true
            }
            guard let open else { continue }
            if open { await drain() }
            return
        }
    }

    /// Writes waiting batches until none is left, then gives the lane back.
    private func drain() async {
        while true {
            let taken = state.withLockedValue { s -> [Waiter]? in
                if s.waiting.isEmpty { s.flight.inFlight -= 1; return nil }
                s.flight.lastStart = .now
                return s.waiting.takeFirst(maxBatch)
            }
            guard let taken else { return }
            let oldest = ContinuousClock.now - maxWait
            let batch = taken.filter { $0.since >= oldest }
            for w in taken where w.since < oldest {
                w.pending.settle(.failure(StorageError.unavailable("the database did not write the refresh within \(maxWait)")))
            }
            guard !batch.isEmpty else { continue }
            let results = await written(batch.map(\.request))
            Self.answer(batch, results)
        }
    }

    /// Settles each waiter on the event loop it queued from, one hand-off per loop for the whole batch.
    /// A continuation resumed on a loop stays there (NIO's executor keeps a job on the loop that
    /// enqueues it); resumed from the writer's thread, each went to whichever loop NIO picked next —
    /// one hand-off per request, and half the time not the loop holding the request's connection
    /// (docs/performance.md, eighth steps).
    private static func answer(_ batch: [Waiter], _ results: [Result<RefreshRotation, any Error>]) {
        onTheirLoops(zip(batch, results).map { (w, r) in (w.loop, { w.pending.settle(r) }) })
    }

    private func written(_ batch: [RotationRequest]) async -> [Result<RefreshRotation, any Error>] {
        let results = await write(batch)
        precondition(results.count == batch.count, "a batch writer answers every request")
        state.withLockedValue { s in
            s.batches += 1
            s.requests += batch.count
            s.largest = max(s.largest, batch.count)
        }
        return results
    }

    /// Requests waiting for a lane.
    var waitingCount: Int { state.withLockedValue { $0.waiting.count } }

    /// Batches written, requests in them, and the largest batch so far.
    var statistics: (batches: Int, requests: Int, largest: Int) {
        state.withLockedValue { ($0.batches, $0.requests, $0.largest) }
    }
}

/// Runs each answer on the event loop its caller queued from (at once if that is this thread), one
/// `execute` per loop for all of that loop's answers; answers without a loop run here.
func onTheirLoops(_ answers: [(loop: (any EventLoop)?, run: @Sendable () -> Void)]) {
    var loops: [(loop: any EventLoop, runs: [@Sendable () -> Void])] = []
    for a in answers {
        guard let loop = a.loop else { a.run(); continue }
        if let i = loops.firstIndex(where: { $0.loop === loop }) {
            loops[i].runs.append(a.run)
        } else {
            loops.append((loop, [a.run]))
        }
    }
    for (loop, runs) in loops {
        if loop.inEventLoop {
            for r in runs { r() }
        } else {
            loop.execute { for r in runs { r() } }
        }
    }
}
