import Foundation
import IdP
import Testing

@Suite("Storage conformance: refresh tokens and families")
struct RefreshStoreConformance {
    @Test(arguments: Backends.all)
    func rotationConsumesTheTokenAndStoresAnUnusedSuccessor(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            let now = Fixture.t0 + 120
            let successor = Fixture.token(familyID: family.id, at: now)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: now, successor: successor) == .rotated)

            let (old, _) = try #require(try await store.refreshToken(hash: first.hash))
            #expect(old.usedAt == now)
            #expect(try await store.refreshTokenIsUnused(hash: first.hash) == false)
            let (next, nextFamily) = try #require(try await store.refreshToken(hash: successor.hash))
            #expect(next == successor)
            #expect(next.usedAt == nil)
            #expect(try await store.refreshTokenIsUnused(hash: successor.hash))
            #expect(nextFamily.id == family.id)
            #expect(nextFamily.lastUsedAt == now, "rotation stamps the family's lastUsedAt")
        }
    }

    @Test(arguments: Backends.all)
    func aSecondRotationIsAlreadyUsedAtTheFirstRotationTime(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            let firstUse = Fixture.t0 + 30
            let s1 = Fixture.token(familyID: family.id, at: firstUse)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: firstUse, successor: s1) == .rotated)

            let s2 = Fixture.token(familyID: family.id, at: firstUse + 10)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: firstUse + 10, successor: s2) == .alreadyUsed(usedAt: firstUse))
            #expect(try await store.refreshToken(hash: s2.hash) == nil, "a refused rotation stores no successor")
            #expect(try await store.family(id: family.id)?.lastUsedAt == firstUse)
        }
    }

    @Test(arguments: Backends.all)
    func theAuditEventCommitsWithTheRotationAndOnlyWithIt(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            func event(_ n: Int) -> AuditEvent {
                AuditEvent(time: Fixture.t0 + 5, type: "token.refresh", actor: "alice", subject: "u-alice", clientID: "kubernetes",
                           details: ["family": family.id, "n": "\(n)"])
            }
            let s1 = Fixture.token(familyID: family.id, at: Fixture.t0 + 5)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: Fixture.t0 + 5, successor: s1, audit: event(1)) == .rotated)
            let s2 = Fixture.token(familyID: family.id, at: Fixture.t0 + 6)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: Fixture.t0 + 6, successor: s2, audit: event(2)) == .alreadyUsed(usedAt: Fixture.t0 + 5))
            #expect(try await store.rotateRefreshToken(hash: Fixture.hash(), now: Fixture.t0 + 7, successor: s2, audit: event(3)) == .notFound)
            let stored = try await store.auditEvents(AuditQuery(type: "token.refresh"))
            #expect(stored.map { $0.details["n"] } == ["1"], "only the rotation that happened is audited")
            #expect(stored.first?.actor == "alice" && stored.first?.details["family"] == family.id)
        }
    }

    /// PostgreSQL runs the rotation as a prepared statement, and switches to a cached generic plan
    /// after five executions on a connection: a long chain, audited and not in turn, must keep every
    /// answer right past that switch, and a family ended in the middle must still stop it.
    @Test(arguments: Backends.all)
    func aLongChainRotatesRightPastThePreparedPlan(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            var current = first
            var used: [(hash: String, at: Date)] = []
            for n in 0..<60 {
                let at = Fixture.t0 + TimeInterval(n + 1)
                let next = Fixture.token(familyID: family.id, at: at)
                let event = n % 2 == 0 ? AuditEvent(time: at, type: "token.refresh", actor: "alice", subject: "u-alice",
                                                    clientID: "kubernetes", details: ["n": "\(n)"]) : nil
                #expect(try await store.rotateRefreshToken(hash: current.hash, now: at, successor: next, audit: event) == .rotated)
                used.append((current.hash, at))
                current = next
            }
            for (hash, at) in used.suffix(12) {
                let again = Fixture.token(familyID: family.id)
                #expect(try await store.rotateRefreshToken(hash: hash, now: Fixture.t0 + 500, successor: again) == .alreadyUsed(usedAt: at))
            }
            let audited = try await store.auditEvents(AuditQuery(type: "token.refresh")).compactMap { $0.details["n"] }
            #expect(Set(audited) == Set(stride(from: 0, to: 60, by: 2).map { "\($0)" }), "exactly the audited rotations wrote a row")
            #expect(try await store.family(id: family.id)?.lastUsedAt == Fixture.t0 + 60)

            #expect(try await store.revokeFamily(id: family.id, now: Fixture.t0 + 600, reason: "test"))
            let after = Fixture.token(familyID: family.id)
            #expect(try await store.rotateRefreshToken(hash: current.hash, now: Fixture.t0 + 601, successor: after) == .notFound)
            #expect(try await store.refreshToken(hash: after.hash) == nil, "an ended family gets no successor")
        }
    }

    @Test(arguments: Backends.all)
    func rotatingAnUnknownTokenIsNotFound(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, _) = try await Fixture.startFamily(in: store)
            let successor = Fixture.token(familyID: family.id)
            #expect(try await store.rotateRefreshToken(hash: Fixture.hash(), now: Fixture.t0, successor: successor) == .notFound)
            #expect(try await store.refreshToken(hash: successor.hash) == nil)
            #expect(try await store.refreshToken(hash: Fixture.hash()) == nil)
            #expect(try await store.refreshTokenIsUnused(hash: Fixture.hash()) == false)
        }
    }

    @Test(arguments: Backends.all)
    func parallelRotationsOfOneTokenHaveExactlyOneWinner(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            let now = Fixture.t0 + 60
            let successors = (0..<50).map { _ in Fixture.token(familyID: family.id, at: now) }
            let outcomes = try await withThrowingTaskGroup(of: (String, RefreshRotation).self) { group in
                for s in successors {
                    group.addTask { (s.hash, try await store.rotateRefreshToken(hash: first.hash, now: now, successor: s)) }
                }
                var all: [(String, RefreshRotation)] = []
                for try await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.count == 50)
            let winners = outcomes.filter { $0.1 == .rotated }
            #expect(winners.count == 1)
            for (_, o) in outcomes where o != .rotated { #expect(o == .alreadyUsed(usedAt: now)) }
            // Only the winner's successor is stored.
            var stored = 0
            for s in successors where try await store.refreshToken(hash: s.hash) != nil { stored += 1 }
            #expect(stored == 1)
            let winner = try #require(winners.first).0
            #expect(try await store.refreshTokenIsUnused(hash: winner))
        }
    }

    @Test(arguments: Backends.all)
    func aTokenOfARevokedFamilyIsNotRotated(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            #expect(try await store.revokeFamily(id: family.id, now: Fixture.t0 + 1, reason: "test"))
            let successor = Fixture.token(familyID: family.id, at: Fixture.t0 + 2)
            let outcome = try await store.rotateRefreshToken(hash: first.hash, now: Fixture.t0 + 2, successor: successor)
            #expect(outcome != .rotated)
            #expect(try await store.refreshToken(hash: successor.hash) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func revokingAFamilySucceedsOnceAndRecordsWhenAndWhy(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, _) = try await Fixture.startFamily(in: store)
            #expect(try await store.revokeFamily(id: family.id, now: Fixture.t0 + 7, reason: "refresh token replayed") == true)
            #expect(try await store.revokeFamily(id: family.id, now: Fixture.t0 + 9, reason: "again") == false)
            let revoked = try #require(try await store.family(id: family.id))
            #expect(revoked.revokedAt == Fixture.t0 + 7, "the first revocation stands")
            #expect(revoked.revokeReason == "refresh token replayed")
            #expect(try await store.revokeFamily(id: "no-such-family", now: Fixture.t0, reason: "x") == false)
            #expect(try await store.family(id: "no-such-family") == nil)
        }
    }

    @Test(arguments: Backends.all)
    func revokingAUsersFamiliesCountsOnlyTheLiveOnesOfThatUser(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let now = Fixture.t0 + 3600
            let (a1, _) = try await Fixture.startFamily(in: store, userID: "alice")
            let (a2, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0 + 1)
            let (a3, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0 + 2)
            try await store.revokeFamily(id: a3.id, now: Fixture.t0 + 3, reason: "earlier")
            let (bob, _) = try await Fixture.startFamily(in: store, userID: "bob")

            #expect(try await store.revokeFamilies(userID: "alice", now: now, reason: "account disabled") == 2)
            #expect(try await store.family(id: a1.id)?.revokedAt == now)
            #expect(try await store.family(id: a2.id)?.revokeReason == "account disabled")
            #expect(try await store.family(id: a3.id)?.revokeReason == "earlier", "an earlier revocation is kept")
            #expect(try await store.family(id: bob.id)?.revokedAt == nil, "other users are untouched")
            #expect(try await store.revokeFamilies(userID: "alice", now: now, reason: "again") == 0)
            #expect(try await store.revokeFamilies(userID: "nobody", now: now, reason: "x") == 0)
        }
    }

    /// "Revokes every live family of a user; returns how many": a family past its absolute
    /// lifetime is not live, so it is not counted.
    @Test(arguments: Backends.all)
    func revokingAUsersFamiliesDoesNotCountExpiredOnes(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            _ = try await Fixture.startFamily(in: store, userID: "alice", lifetime: 60)
            _ = try await Fixture.startFamily(in: store, userID: "alice", lifetime: 12 * 3600)
            #expect(try await store.revokeFamilies(userID: "alice", now: Fixture.t0 + 120, reason: "account disabled") == 1)
        }
    }

    @Test(arguments: Backends.all)
    func activeFamiliesAreLiveOnesNewestFirst(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (oldest, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0)
            let (newer, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0 + 10)
            let (revoked, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0 + 20)
            let (expiring, _) = try await Fixture.startFamily(in: store, userID: "alice", at: Fixture.t0 + 30, lifetime: 100)
            let (bobs, _) = try await Fixture.startFamily(in: store, userID: "bob", at: Fixture.t0 + 40)
            try await store.revokeFamily(id: revoked.id, now: Fixture.t0 + 50, reason: "test")

            let atStart = try await store.activeFamilies(userID: "alice", now: Fixture.t0 + 60)
            #expect(atStart.map(\.id) == [expiring.id, newer.id, oldest.id])

            let later = Fixture.t0 + 30 + 100  // `expiring` reached its absolute end
            #expect(try await store.activeFamilies(userID: "alice", now: later).map(\.id) == [newer.id, oldest.id])
            #expect(try await store.activeFamilies(userID: nil, now: later).map(\.id) == [bobs.id, newer.id, oldest.id])
            #expect(try await store.activeFamilies(userID: "carol", now: later).isEmpty)
        }
    }
    /// Revocation racing a chain of refreshes: once the revoke has returned, nothing rotates any more,
    /// and the chain never forks (at most one unused token at any time).
    @Test(arguments: Backends.all)
    func revokeRacingRefreshLeavesNothingRotatable(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            let chain = (0..<30).map { i in Fixture.token(familyID: family.id, at: Fixture.t0 + TimeInterval(i + 1)) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var current = first
                    for next in chain {
                        guard try await store.rotateRefreshToken(hash: current.hash, now: next.createdAt, successor: next) == .rotated else { return }
                        current = next
                    }
                }
                group.addTask {
                    try await Task.sleep(nanoseconds: 2_000_000)
                    #expect(try await store.revokeFamily(id: family.id, now: Fixture.t0 + 10, reason: "admin"))
                }
                try await group.waitForAll()
            }
            #expect(try await store.family(id: family.id)?.revokedAt != nil)
            // Whatever token is unused now cannot be rotated.
            var unused = 0
            for t in [first] + chain where try await store.refreshTokenIsUnused(hash: t.hash) {
                unused += 1
                let late = Fixture.token(familyID: family.id, at: Fixture.t0 + 100)
                #expect(try await store.rotateRefreshToken(hash: t.hash, now: Fixture.t0 + 100, successor: late) != .rotated)
            }
            #expect(unused <= 1)
        }
    }


    @Test(arguments: Backends.all)
    func aFamilyKeepsWhereItCameFrom(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
            // Started by a code redemption.
            let code = Fixture.code()
            try await store.createCode(code)
            var redeemed = Fixture.family()
            redeemed.address = "2001:db8::7"
            redeemed.userAgent = "kubectl/v1.32.0 (linux/amd64) kubernetes/abc123"
            let first = Fixture.token(familyID: redeemed.id)
            #expect(try await store.redeemCode(hash: code.hash, now: Fixture.t0, family: redeemed, firstToken: first) == .redeemed)
            // Started directly (the portal's own device flow), and one that knows nothing.
            var direct = Fixture.family(at: Fixture.t0 + 1)
            direct.address = "192.0.2.44"
            direct.userAgent = chrome
            try await store.startFamily(direct, firstToken: Fixture.token(familyID: direct.id, at: Fixture.t0 + 1))
            let plain = Fixture.family(at: Fixture.t0 + 2)
            try await store.startFamily(plain, firstToken: Fixture.token(familyID: plain.id, at: Fixture.t0 + 2))

            #expect(try await store.family(id: redeemed.id) == redeemed)
            #expect(try await store.family(id: direct.id) == direct)
            let stored = try #require(try await store.family(id: plain.id))
            #expect(stored.address == "" && stored.userAgent == "")
            #expect(try await store.refreshToken(hash: first.hash)?.1 == redeemed)
            let active = try await store.activeFamilies(userID: nil, now: Fixture.t0 + 3)
            #expect(active.map(\.address) == ["", "192.0.2.44", "2001:db8::7"])
            #expect(active.map(\.userAgent) == ["", chrome, redeemed.userAgent])
            // Rotation and revocation leave them alone.
            let next = Fixture.token(familyID: redeemed.id, at: Fixture.t0 + 4)
            #expect(try await store.rotateRefreshToken(hash: first.hash, now: Fixture.t0 + 4, successor: next) == .rotated)
            try await store.revokeFamily(id: redeemed.id, now: Fixture.t0 + 5, reason: "test")
            let after = try #require(try await store.family(id: redeemed.id))
            #expect(after.address == redeemed.address && after.userAgent == redeemed.userAgent)
        }
    }
}
