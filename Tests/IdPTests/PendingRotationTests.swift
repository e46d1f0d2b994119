import Foundation
@testable import IdP
import Testing

@Suite("Pending refresh rotations", .timeLimit(.minutes(1)))
struct PendingRotationTests {
    @Test func anOutcomeSettledBeforeItIsAwaitedIsReturnedAtOnce() async throws {
        let p = PendingRefreshRotation()
        p.settle(.success(.rotated))
        #expect(p.isSettled)
        #expect(try await p.outcome() == .rotated)
    }

    @Test func anAwaitedOutcomeArrivesWhenSettledAndOnlyTheFirstSettlementCounts() async throws {
        let p = PendingRefreshRotation()
        let waiting = Task { try await p.outcome() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !p.isAwaited, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
        #expect(p.isAwaited && !p.isSettled, "the caller waits in outcome() before the store settles")
        p.settle(.success(.notFound))
        p.settle(.success(.rotated))  // ignored
        #expect(try await waiting.value == .notFound)
        #expect(try await p.outcome() == .notFound)
    }

    @Test func aFailureReachesTheCaller() async throws {
        let p = PendingRefreshRotation()
        p.settle(.failure(StorageError.unavailable("down")))
        await #expect(throws: StorageError.self) { try await p.outcome() }
    }
}
