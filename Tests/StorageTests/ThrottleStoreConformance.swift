import Foundation
import IdP
import Testing

@Suite("Storage conformance: login throttling")
struct ThrottleStoreConformance {
    static let window: TimeInterval = 900
    static let lockout: TimeInterval = 60

    @Test(arguments: Backends.all)
    func failuresAreCountedInOneWindow(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.throttleState(key: "user:alice") == nil)
            let t = Fixture.t0
            let first = try await store.recordFailure(key: "user:alice", now: t, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(first == ThrottleState(key: "user:alice", failures: 1, windowStart: t, lockedUntil: nil))
            let second = try await store.recordFailure(key: "user:alice", now: t + 10, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(second.failures == 2)
            #expect(second.windowStart == t)
            #expect(second.lockedUntil == nil)
            #expect(try await store.throttleState(key: "user:alice") == second)
            #expect(try await store.throttleState(key: "user:bob") == nil, "keys are independent")
        }
    }

    @Test(arguments: Backends.all)
    func reachingTheLimitLocksOut(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            for i in 0..<2 {
                let s = try await store.recordFailure(key: "addr:10.0.0.1", now: t + Double(i), window: Self.window, maxFailures: 3, lockout: Self.lockout)
                #expect(s.lockedUntil == nil)
            }
            let third = try await store.recordFailure(key: "addr:10.0.0.1", now: t + 20, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(third.failures == 3)
            #expect(third.lockedUntil == t + 20 + Self.lockout)
            #expect(try await store.throttleState(key: "addr:10.0.0.1")?.lockedUntil == t + 20 + Self.lockout)
            // Failing on while locked keeps it locked at least as long.
            let fourth = try await store.recordFailure(key: "addr:10.0.0.1", now: t + 30, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(fourth.failures == 4)
            #expect(try #require(fourth.lockedUntil) >= t + 30 + Self.lockout)
        }
    }

    @Test(arguments: Backends.all)
    func aNewWindowStartsAfterTheOldOneHasPassed(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            _ = try await store.recordFailure(key: "user:alice", now: t, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            _ = try await store.recordFailure(key: "user:alice", now: t + 1, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            let fresh = try await store.recordFailure(key: "user:alice", now: t + Self.window, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(fresh.failures == 1)
            #expect(fresh.windowStart == t + Self.window)
            #expect(fresh.lockedUntil == nil)
        }
    }

    @Test(arguments: Backends.all)
    func clearingForgetsTheKey(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            _ = try await store.recordFailure(key: "user:alice", now: Fixture.t0, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            try await store.clearThrottle(key: "user:alice")
            #expect(try await store.throttleState(key: "user:alice") == nil)
            let s = try await store.recordFailure(key: "user:alice", now: Fixture.t0 + 1, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(s.failures == 1)
            try await store.clearThrottle(key: "user:nobody")  // clearing nothing is fine
        }
    }

    @Test(arguments: Backends.all)
    func parallelFailuresAreAllCounted(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<25 {
                    group.addTask {
                        _ = try await store.recordFailure(key: "user:alice", now: Fixture.t0, window: Self.window, maxFailures: 100, lockout: Self.lockout)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.throttleState(key: "user:alice")?.failures == 25)
        }
    }

    @Test(arguments: Backends.all)
    func familiarAddressesAreRememberedAndForgottenByAge(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            #expect(try await store.isFamiliar(account: "alice", address: "192.0.2.1", since: t - 86400) == false)
            try await store.rememberFamiliar(account: "alice", address: "192.0.2.1", now: t)
            #expect(try await store.isFamiliar(account: "alice", address: "192.0.2.1", since: t - 86400))
            #expect(try await store.isFamiliar(account: "alice", address: "192.0.2.2", since: t - 86400) == false, "per address")
            #expect(try await store.isFamiliar(account: "bob", address: "192.0.2.1", since: t - 86400) == false, "per account")
            #expect(try await store.isFamiliar(account: "alice", address: "192.0.2.1", since: t + 1) == false, "too old for the window")
            // A later sign-in refreshes it (an upsert, not a second row).
            try await store.rememberFamiliar(account: "alice", address: "192.0.2.1", now: t + 100)
            #expect(try await store.isFamiliar(account: "alice", address: "192.0.2.1", since: t + 50))
        }
    }

    @Test(arguments: Backends.all)
    func throttlesListsEveryKeyWithFailures(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            _ = try await store.recordFailure(key: "pair:alice|192.0.2.1", now: Fixture.t0, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            _ = try await store.recordFailure(key: "addr:192.0.2.1", now: Fixture.t0, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            let all = try await store.throttles(now: Fixture.t0)
            #expect(all.map(\.key) == ["addr:192.0.2.1", "pair:alice|192.0.2.1"])
            try await store.clearThrottle(key: "addr:192.0.2.1")
            #expect(try await store.throttles(now: Fixture.t0).map(\.key) == ["pair:alice|192.0.2.1"])
        }
    }

    @Test(arguments: Backends.all)
    func textWithANulIsStoredWhole(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            // SQLite binds text up to the first NUL unless the length is given: "a\0b" must not read back as "a".
            // (PostgreSQL refuses NUL in text outright; the HTTP edge refuses it before it gets here.)
            guard backend.name.lowercased().contains("sqlite") else { return }
            _ = try await store.recordFailure(key: "pair:a\u{0}evil|x", now: Fixture.t0, window: Self.window, maxFailures: 3, lockout: Self.lockout)
            #expect(try await store.throttleState(key: "pair:a") == nil)
            #expect(try await store.throttleState(key: "pair:a\u{0}evil|x")?.failures == 1)
        }
    }
}
