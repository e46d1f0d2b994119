import Foundation
import IdP
import NIOConcurrencyHelpers
import NIOPosix
@testable import Storage
import Testing

/// The group-commit queue on its own, with a writer the test controls.
@Suite("Rotation batches", .timeLimit(.minutes(1)))
struct RotationBatcherTests {
    /// Opens once; every `wait` before and after returns then.
    final class Gate: Sendable {
        private let stream: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation
        init() { (stream, continuation) = AsyncStream.makeStream() }
        func wait() async { for await _ in stream {} }
        func open() { continuation.finish() }
    }

    static func request(_ hash: String) -> RotationRequest {
        RotationRequest(hash: hash, now: Date(timeIntervalSince1970: 1_700_000_000), successor: RefreshToken(
            hash: "next-" + hash, familyID: "f", clientID: "c", createdAt: Date(timeIntervalSince1970: 1_700_000_000),
            idleExpiresAt: Date(timeIntervalSince1970: 1_700_086_400)), audit: nil)
    }

    /// A writer that records each batch, holds the batch containing `held` until `gate` opens, fails
    /// "bad" alone and answers "used…" as already used.
    static func writer(_ seen: NIOLockedValueBox<[[String]]>, held: String, gate: Gate) -> RotationBatcher.Write {
        { batch in
            seen.withLockedValue { $0.append(batch.map(\.hash)) }
            if batch.contains(where: { $0.hash == held }) { await gate.wait() }
            return batch.map { r in
                if r.hash == "bad" { return .failure(StorageError.conflict("bad")) }
                return .success(r.hash.hasPrefix("used") ? .alreadyUsed(usedAt: r.now) : .rotated)
            }
        }
    }

    static func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test func whatArrivesDuringAWriteGoesInTheNextBatchInSizedBatchesEachWithItsOwnAnswer() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 1, maxBatch: 4, write: Self.writer(seen, held: "first", gate: gate))
        let first = Task { try await batcher.rotate(Self.request("first")) }
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        let names = (1...9).map { "t\($0)" } + ["bad", "used-1"]
        let others = names.map { n in
            Task { () -> (String, Result<RefreshRotation, any Error>) in
                do { return (n, .success(try await batcher.rotate(Self.request(n)))) } catch { return (n, .failure(error)) }
            }
        }
        try await Self.until { batcher.waitingCount == names.count }
        #expect(seen.withLockedValue { $0.count } == 1, "nothing else is written while the one lane is busy")
        gate.open()
        #expect(try await first.value == .rotated)
        for task in others {
            let (n, result) = await task.value
            switch n {
            case "bad": #expect(throws: StorageError.self) { try result.get() }
            case "used-1": #expect(try result.get() == .alreadyUsed(usedAt: Self.request(n).now))
            default: #expect(try result.get() == .rotated)
            }
        }
        let batches = seen.withLockedValue { $0 }
        #expect(batches.first == ["first"])
        #expect(batches.dropFirst().map(\.count) == [4, 4, 3], "the eleven waiting requests in batches of at most four")
        #expect(Set(batches.dropFirst().joined()) == Set(names) && batches.joined().count == 12, "every request written once")
        let stats = batcher.statistics
        #expect(stats.batches == 4 && stats.requests == 12 && stats.largest == 4)
        #expect(batcher.waitingCount == 0)
    }

    @Test func aSecondLaneWritesWhileTheFirstIsBusyAndAnIdleBatcherWritesAtOnce() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 2, write: Self.writer(seen, held: "slow", gate: gate))
        let slow = Task { try await batcher.rotate(Self.request("slow")) }
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        // The second lane is free: this one is written alone, at once, while "slow" still waits.
        #expect(try await batcher.rotate(Self.request("quick")) == .rotated)
        #expect(seen.withLockedValue { $0 } == [["slow"], ["quick"]])
        gate.open()
        #expect(try await slow.value == .rotated)
        // Idle again: one request, one batch of one.
        #expect(try await batcher.rotate(Self.request("used-2")) == .alreadyUsed(usedAt: Self.request("x").now))
        #expect(seen.withLockedValue { $0.last } == ["used-2"])
    }

    @Test func aRequestThatWaitedPastTheLimitIsAnsweredUnavailableAndNotWritten() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 1, maxWait: .milliseconds(50), write: Self.writer(seen, held: "stuck", gate: gate))
        let stuck = Task { try await batcher.rotate(Self.request("stuck")) }
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        let late = Task { try await batcher.rotate(Self.request("late")) }
        try await Self.until { batcher.waitingCount == 1 }
        try await Task.sleep(for: .milliseconds(120))
        gate.open()
        #expect(try await stuck.value == .rotated)
        do {
            _ = try await late.value
            Issue.record("a request that waited past the limit was written")
        } catch let e as StorageError {
            #expect(e.isUnavailable && e.message.contains("did not write the refresh"), "\(e)")
        }
        #expect(seen.withLockedValue { $0 } == [["stuck"]], "a request answered unavailable is not written afterwards")
        // The lane is free again: the next request is written at once.
        #expect(try await batcher.rotate(Self.request("next")) == .rotated)
    }

    @Test func beginQueuesTheRotationBeforeItReturnsAndItsOutcomeIsAwaitedLater() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 1, write: Self.writer(seen, held: "first", gate: gate))
        let first = batcher.begin(Self.request("first"))
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        // No suspension between begin and the check: the request is queued by the time begin returns
        // (the provider signs the successor's tokens meanwhile).
        let later = batcher.begin(Self.request("used-3"))
        #expect(batcher.waitingCount == 1 && !later.isSettled && !first.isSettled)
        gate.open()
        #expect(try await first.outcome() == .rotated)
        #expect(try await later.outcome() == .alreadyUsed(usedAt: Self.request("x").now))
        #expect(try await later.outcome() == .alreadyUsed(usedAt: Self.request("x").now), "asked again: the same answer")
        #expect(seen.withLockedValue { $0 } == [["first"], ["used-3"]])
    }

    @Test func aFurtherLaneOpensOnlyOnceNoBatchHasStartedForTheSpread() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 2, spread: .milliseconds(300), write: Self.writer(seen, held: "stalled", gate: gate))
        let stalled = batcher.begin(Self.request("stalled"))
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        // A lane is free, but a batch started just now: these wait for the next batch.
        let early = batcher.begin(Self.request("early"))
        let second = batcher.begin(Self.request("second"))
        try await Task.sleep(for: .milliseconds(50))
        #expect(seen.withLockedValue { $0.count } == 1 && batcher.waitingCount == 2, "no second lane within the spread")
        // Nothing else arrives; the batch in flight stalls past the spread: a second lane opens by
        // itself and takes everything waiting, while the stalled batch still waits.
        #expect(try await early.outcome() == .rotated)
        #expect(try await second.outcome() == .rotated)
        #expect(!stalled.isSettled, "written beside the stalled batch, not after it")
        #expect(seen.withLockedValue { $0 } == [["stalled"], ["early", "second"]])
        // Arriving after the spread with a lane free: written at once, beside the stalled batch.
        try await Task.sleep(for: .milliseconds(350))
        #expect(try await batcher.begin(Self.request("late")).outcome() == .rotated)
        #expect(!stalled.isSettled)
        gate.open()
        #expect(try await stalled.outcome() == .rotated)
        #expect(seen.withLockedValue { $0 } == [["stalled"], ["early", "second"], ["late"]])
    }

    @Test func onlyOneRequestsOwnDataOrARetryableStateRedoesABatchOneByOne() {
        #expect(RotationWriter.retriesAlone(StorageError.conflict("UNIQUE constraint failed: refresh_tokens.hash")))
        #expect(RotationWriter.retriesAlone(StorageError.unavailable("40P01 deadlock detected")))
        #expect(RotationWriter.retriesAlone(StorageError.unavailable("40001 could not serialize access")))
        #expect(!RotationWriter.retriesAlone(StorageError.unavailable("cannot connect to the database (PostgreSQL at db:40001/portal)")))
        #expect(!RotationWriter.retriesAlone(StorageError.unavailable("57P01 terminating connection due to administrator command")))
        #expect(!RotationWriter.retriesAlone(CancellationError()))
    }

    /// Never shut down (a loop the batcher may still hand an answer to).
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// A rotation queued from an event loop is answered on that loop (one hand-off per loop and batch),
    /// not from the writer's thread: while the loop is busy, the written rotation stays unanswered.
    @Test func aRotationQueuedFromAnEventLoopIsAnsweredOnThatLoop() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = RotationBatcher(lanes: 1, write: Self.writer(seen, held: "from-loop", gate: gate))
        let loop = Self.group.next()
        let pending = try await loop.submit { batcher.begin(Self.request("from-loop")) }.get()
        try await Self.until { seen.withLockedValue { $0.count } == 1 }
        // Hold the loop, then let the write finish: the answer must wait for the loop.
        let release = NIOLockedValueBox(false)
        let holding = loop.submit { while !release.withLockedValue({ $0 }) { usleep(1_000) } }
        gate.open()
        try await Task.sleep(for: .milliseconds(100))
        #expect(!pending.isSettled, "answered on the loop it was queued from, which is busy")
        release.withLockedValue { $0 = true }
        try await holding.get()
        #expect(try await pending.outcome() == .rotated)
        // Off any loop: answered by the writer directly.
        let off = batcher.begin(Self.request("off-loop"))
        #expect(try await off.outcome() == .rotated)
    }
}
