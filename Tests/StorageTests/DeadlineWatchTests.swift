import Foundation
@testable import Storage
import Testing

/// The deadline watch that bounds PostgreSQL operations (acquire, then operation timeout).
@Suite("Deadline watch")
struct DeadlineWatchTests {
    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var times: [ContinuousClock.Instant] = []
        func record() { lock.withLock { times.append(.now) } }
        var all: [ContinuousClock.Instant] { lock.withLock { times } }
    }

    @Test func aDueEntryFiresOnceNotBeforeItsDeadlineAndThenIsGone() async throws {
        let watch = DeadlineWatch(resolution: .milliseconds(5))
        let calls = Calls()
        let start = ContinuousClock.now
        _ = watch.add(at: start + .milliseconds(30)) { calls.record(); return nil }
        #expect(watch.count == 1)
        try await waitUntil { !calls.all.isEmpty }
        try await Task.sleep(for: .milliseconds(40))
        #expect(calls.all.count == 1)
        #expect(calls.all[0] >= start + .milliseconds(30))
        #expect(watch.count == 0)
    }

    @Test func aRemovedEntryNeverFires() async throws {
        let watch = DeadlineWatch(resolution: .milliseconds(5))
        let calls = Calls()
        let id = watch.add(at: .now + .milliseconds(20)) { calls.record(); return nil }
        let other = watch.add(at: .now + .milliseconds(20)) { return nil }
        watch.remove(id)
        watch.remove(other)
        try await Task.sleep(for: .milliseconds(80))
        #expect(calls.all.isEmpty)
        #expect(watch.count == 0)
    }

    @Test func anEntryThatAsksAgainFiresAgainAtItsNewDeadline() async throws {
        // The operation-timeout phase: acquired in time, then `operationTimeout` more.
        let watch = DeadlineWatch(resolution: .milliseconds(5))
        let calls = Calls()
        let start = ContinuousClock.now
        _ = watch.add(at: start + .milliseconds(10)) {
            calls.record()
            return calls.all.count == 1 ? .now + .milliseconds(30) : nil
        }
        try await waitUntil { calls.all.count == 2 }
        let times = calls.all
        #expect(times[1] - times[0] >= .milliseconds(30))
        try await Task.sleep(for: .milliseconds(40))
        #expect(calls.all.count == 2)
        #expect(watch.count == 0)
    }

    @Test func theTickerStopsWhenNothingIsLeftAndStartsAgainForTheNext() async throws {
        let watch = DeadlineWatch(resolution: .milliseconds(5))
        let calls = Calls()
        _ = watch.add(at: .now) { calls.record(); return nil }
        try await waitUntil { calls.all.count == 1 }
        try await Task.sleep(for: .milliseconds(30))   // the ticker has found nothing and stopped
        _ = watch.add(at: .now + .milliseconds(10)) { calls.record(); return nil }
        try await waitUntil { calls.all.count == 2 }
        // Many at once, some removed: exactly the others fire.
        let ids = (0..<100).map { i in watch.add(at: .now + .milliseconds(10)) { calls.record(); return nil } }
        for id in ids.prefix(40) { watch.remove(id) }
        try await waitUntil { calls.all.count == 62 }
        try await Task.sleep(for: .milliseconds(40))
        #expect(calls.all.count == 62)
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else { Issue.record("condition not met within 30 s (the cooperative pool starved?)"); return }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
