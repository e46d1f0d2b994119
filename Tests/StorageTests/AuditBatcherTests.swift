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
            try await RotationBatcherTests.until { batcher.waitingCount == 5 }
            try await Task.sleep(for: .milliseconds(20))
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

    /// A batch that fails is written again one event at a time: only the event that cannot be written
    /// fails, and a later batch is written as usual.
    @Test func aBatchThatFailsIsWrittenAgainOneByOneSoOnlyTheBadEventFails() async throws {
        let gate = Gate()
        struct Bad: Error {}
        let seen = NIOLockedValueBox<[[String]]>([])
        let batcher = AuditBatcher(write: { events in
            seen.withLockedValue { $0.append(events.map(\.actor)) }
            if events.contains(where: { $0.actor == "first" }) { await gate.wait() }
            if events.contains(where: { $0.actor == "bad" }) { throw Bad() }
        })
        let first = Task { try await batcher.append(Self.event("first")) }
        try await RotationBatcherTests.until { batcher.statistics.batches == 1 }
        let bad = Task { try await batcher.append(Self.event("bad")) }
        let good = Task { try await batcher.append(Self.event("good")) }
        try await RotationBatcherTests.until { batcher.waitingCount == 2 }
        gate.open()
        try await first.value
        await #expect(throws: Bad.self) { try await bad.value }
        try await good.value
        let batches = seen.withLockedValue { $0 }
        #expect(batches.count == 4, "first, the pair together, then each alone: \(batches)")
        #expect(Set(batches[1]) == ["bad", "good"] && Set(batches[2...].map { $0 }) == [["bad"], ["good"]])
        try await batcher.append(Self.event("later"))
        #expect(seen.withLockedValue { $0.last } == ["later"])
    }

    /// On PostgreSQL a write stuck past `stall` (a lock, a slow flush) does not hold up the events
    /// behind it: the next arrival opens a further lane; with one lane (SQLite) they wait.
    @Test func aStuckWriteOpensAFurtherLaneForWhatArrivesAfterTheStall() async throws {
        let gate = Gate()
        let seen = NIOLockedValueBox<[[String]]>([])
        let batcher = AuditBatcher(lanes: 2, stall: .milliseconds(30), write: { events in
            seen.withLockedValue { $0.append(events.map(\.actor)) }
            if events.contains(where: { $0.actor == "stuck" }) { await gate.wait() }
        })
        let stuck = Task { try await batcher.append(Self.event("stuck")) }
        try await RotationBatcherTests.until { batcher.statistics.batches == 1 }
        try await Task.sleep(for: .milliseconds(60))
        try await batcher.append(Self.event("behind"))  // returns while "stuck" is still in flight
        #expect(seen.withLockedValue { $0 } == [["stuck"], ["behind"]])
        gate.open()
        try await stuck.value

        let held = Gate()
        let oneSeen = NIOLockedValueBox<[[String]]>([])
        let single = AuditBatcher(lanes: 1, stall: .milliseconds(30), write: { events in
            oneSeen.withLockedValue { $0.append(events.map(\.actor)) }
            if events.contains(where: { $0.actor == "stuck" }) { await held.wait() }
        })
        let s1 = Task { try await single.append(Self.event("stuck")) }
        try await RotationBatcherTests.until { single.statistics.batches == 1 }
        try await Task.sleep(for: .milliseconds(60))
        let s2 = Task { try await single.append(Self.event("behind")) }
        try await RotationBatcherTests.until { single.waitingCount == 1 }
        #expect(oneSeen.withLockedValue { $0 } == [["stuck"]], "one lane: the event behind waits")
        held.open()
        try await s1.value
        try await s2.value
    }

    /// Several events in one write are each stored whole, values in their own columns (SQLite's
    /// transaction of single-row INSERTs, PostgreSQL's multi-row INSERT with its numbered binds).
    @Test(arguments: Backends.all)
    func aBatchWriteStoresEveryEventWhole(_ backend: Backend) async throws {
        try await backend.withEmptyDatabase { sql in
            try await Migrations.apply(sql, now: Fixture.t0)
            let write = SQLStorage.auditWriter(sql)
            let events = (0..<3).map { i in
                AuditEvent(time: Fixture.t0 + Double(i), type: "token.exchange", actor: "robot-\(i)", subject: "s\(i)", clientID: "c\(i)",
                           remoteAddress: "10.0.0.\(i)", success: i != 1, details: ["n": "\(i)", "quote": "a\"b"])
            }
            try await write(events)
            let store = SQLStorage(backend: sql)
            let all = try await store.auditEvents(AuditQuery(type: "token.exchange"))
            #expect(all.count == 3)
            for e in all {
                let i = Int(e.actor.dropFirst("robot-".count)) ?? -1
                #expect(e.subject == "s\(i)" && e.clientID == "c\(i)" && e.remoteAddress == "10.0.0.\(i)" && e.success == (i != 1))
                #expect(e.time == Fixture.t0 + Double(i) && e.details == ["n": "\(i)", "quote": "a\"b"])
            }
        }
    }
}
