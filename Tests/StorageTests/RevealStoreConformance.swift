import Foundation
import IdP
import Testing

@Suite("Storage conformance: one-time reveals")
struct RevealStoreConformance {
    static func reveal(id: String = UUID().uuidString, at time: Date = Fixture.t0, ttl: TimeInterval = 300,
                       kind: String = "credential") -> Reveal {
        Reveal(id: id, browserHash: Fixture.hash(), kind: kind, sealed: "v1.sealed:" + Fixture.hash(), createdAt: time, expiresAt: time + ttl)
    }

    @Test(arguments: Backends.all)
    func aRevealIsTakenOnceAndThenGone(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let r = Self.reveal()
            let other = Self.reveal(kind: "robot")
            try await store.createReveal(r)
            try await store.createReveal(other)
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0 + 10) == r)
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0 + 11) == nil, "a second take finds nothing")
            #expect(try await store.takeReveal(id: "no-such-reveal", browserHash: "b", now: Fixture.t0) == nil)
            // Another browser (or person) cannot take it, nor use it up: it stays for its owner.
            let third = Self.reveal()
            try await store.createReveal(third)
            #expect(try await store.takeReveal(id: third.id, browserHash: "someone-else", now: Fixture.t0 + 1) == nil)
            #expect(try await store.takeReveal(id: third.id, browserHash: third.browserHash, now: Fixture.t0 + 2) == third)
            // Taking one leaves the others alone.
            #expect(try await store.takeReveal(id: other.id, browserHash: other.browserHash, now: Fixture.t0 + 12) == other)
        }
    }

    @Test(arguments: Backends.all)
    func aRevealIdIsTakenOnlyOnceEvenWhenCreatedTwice(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let r = Self.reveal()
            try await store.createReveal(r)
            await #expect(throws: StorageError.self) { try await store.createReveal(Self.reveal(id: r.id)) }
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0) == r, "the refused second create changed nothing")
        }
    }

    @Test(arguments: Backends.all)
    func anExpiredRevealIsNotHandedOutButDeleted(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let r = Self.reveal(ttl: 60)
            try await store.createReveal(r)
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: r.expiresAt) == nil, "expired at expiresAt")
            // Gone, not merely refused: an earlier clock does not bring it back.
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0) == nil)
            #expect(try await store.purgeExpired(now: Fixture.t0 + 3600) == 0)
        }
    }

    @Test(arguments: Backends.all)
    func purgeDeletesExpiredRevealsAndKeepsLiveOnes(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let now = Fixture.t0 + 600
            let dead = Self.reveal(at: Fixture.t0, ttl: 300)
            let endsNow = Self.reveal(at: Fixture.t0, ttl: 600)
            let live = Self.reveal(at: now - 10, ttl: 300)
            for r in [dead, endsNow, live] { try await store.createReveal(r) }
            #expect(try await store.purgeExpired(now: now) == 2)
            // Taken at the creation time, when all three were live: only the one purge kept is there.
            #expect(try await store.takeReveal(id: dead.id, browserHash: dead.browserHash, now: Fixture.t0) == nil)
            #expect(try await store.takeReveal(id: endsNow.id, browserHash: endsNow.browserHash, now: Fixture.t0) == nil)
            #expect(try await store.takeReveal(id: live.id, browserHash: live.browserHash, now: now) == live)
        }
    }

    @Test(arguments: Backends.all)
    func parallelTakersOfOneRevealHaveExactlyOneWinner(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            for round in 0..<5 {
                let r = Self.reveal(kind: "round-\(round)")
                try await store.createReveal(r)
                let taken = try await withThrowingTaskGroup(of: Reveal?.self) { group in
                    for _ in 0..<20 { group.addTask { try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0 + 1) } }
                    var all: [Reveal?] = []
                    for try await t in group { all.append(t) }
                    return all
                }
                #expect(taken.count == 20)
                #expect(taken.compactMap { $0 } == [r], "round \(round): exactly one taker gets the reveal")
            }
        }
    }
}
