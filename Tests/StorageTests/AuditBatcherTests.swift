import Foundation
import IdP
import NIOConcurrencyHelpers
@testable import Storage
import Testing

/// Audit events appended together are committed together; each caller returns once its own is committed.
@Suite("Audit batches", .timeLimit(.minutes(1)))
struct AuditBatcherTests {
    typealias Gate = RotationBatcherTests.Gate

    static func event(_ actor: String) -> AuditEvent { AuditEvent(time: Fixture.t0, type: "token.exchange", actor: actor) }

    @Test func eventsAppendedDuringAWriteGoInTheNextBatchAndEachCallerWaitsForItsOwnCommit() async throws {
        let seen = NIOLockedValueBox<[[String]]>([])
        let gate = Gate()
        let batcher = AuditBatcher(write: { events in
            seen.withLockedValue { $0.append(events.map(\.actor)) }
            if events.contains(where: { $0.actor == "first" }) { await gate.wait() }
        })
        let returned = NIOLockedValueBox<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await batcher.append(Self.event("first")); returned.withLockedValue { $0.append("first") } }
            try await RotationBatcherTests.until { seen.withLockedValue { $0.count } == 1 }
            for i in 0..<5 {
                group.addTask { try await batcher.append(Self.event("e\(i)")); returned.withLockedValue { $0.append("e\(i)") } }
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(returned.withLockedValue { $0 }.isEmpty, "a caller returned before its event was committed")
            #expect(seen.withLockedValue { $0.count } == 1, "written while the first batch was still in flight")
            gate.open()
            try await group.waitForAll()
        }
        let batches = seen.withLockedValue { $0 }
        #expect(batches.count == 2)
        #expect(batches.first == ["first"])
        #expect(Set(batches.last ?? []) == Set((0..<5).map { "e\($0)" }))
        #expect(returned.withLockedValue { $0.count } == 6)
        #expect(batcher.statistics.events == 6 && batcher.statistics.largest == 5)
    }

    @Test func aBatchThatFailsFailsItsOwnCallersOnly() async throws {
        let gate = Gate()
        struct Full: Error {}
        let batcher = AuditBatcher(write: { events in
            if events.contains(where: { $0.actor == "first" }) { await gate.wait(); throw Full() }
        })
        let first = Task { try await batcher.append(Self.event("first")) }
        try await RotationBatcherTests.until { batcher.statistics.batches == 1 }
        let second = Task { try await batcher.append(Self.event("second")) }
        try await Task.sleep(for: .milliseconds(20))
        gate.open()
        await #expect(throws: Full.self) { try await first.value }
        try await second.value
        #expect(batcher.statistics.batches == 2)
    }
}
