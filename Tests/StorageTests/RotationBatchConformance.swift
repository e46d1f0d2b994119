import Foundation
import IdP
@testable import Storage
import Testing

/// Rotations arriving together are written together (`RotationBatcher`): every one of them must
/// still be single use, audited only when it happened, and fail alone.
@Suite("Storage conformance: rotations written together", .timeLimit(.minutes(2)))
struct RotationBatchConformance {
    static func event(_ family: String, _ step: Int, at: Date) -> AuditEvent {
        AuditEvent(time: at, type: "token.refresh", actor: "alice", subject: "u-alice", clientID: "kubernetes",
                   remoteAddress: "192.0.2.1", details: ["family": family, "step": "\(step)"])
    }

    /// Sixteen chains at once, and every step presented twice at the same instant (two kubectl
    /// processes): each step has exactly one winner, the other is told when the token was used,
    /// and only the winners' successors and audit rows exist.
    @Test(arguments: Backends.all)
    func chainsRotatingAtOnceEachStepHasOneWinnerAndOneAuditRow(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            var starts: [(RefreshFamily, RefreshToken)] = []
            for _ in 0..<16 { starts.append(try await Fixture.startFamily(in: store)) }
            let steps = 10
            let chains = try await withThrowingTaskGroup(of: (String, [String], [String]).self) { group in
                for (family, first) in starts {
                    group.addTask {
                        var current = first, used: [String] = [], losers: [String] = []
                        for step in 1...steps {
                            let at = Fixture.t0 + TimeInterval(step)
                            let a = Fixture.token(familyID: family.id, at: at), b = Fixture.token(familyID: family.id, at: at)
                            let hash = current.hash
                            async let ra = store.rotateRefreshToken(hash: hash, now: at, successor: a, audit: Self.event(family.id, step, at: at))
                            async let rb = store.rotateRefreshToken(hash: hash, now: at, successor: b, audit: Self.event(family.id, step, at: at))
                            let (oa, ob) = try await (ra, rb)
                            #expect([oa, ob].filter { $0 == .rotated }.count == 1, "one winner per step")
                            #expect([oa, ob].contains(.alreadyUsed(usedAt: at)), "the other learns when it was used")
                            used.append(current.hash)
                            losers.append(oa == .rotated ? b.hash : a.hash)
                            current = oa == .rotated ? a : b
                        }
                        return (family.id, used, losers + [current.hash])
                    }
                }
                var all: [(String, [String], [String])] = []
                for try await c in group { all.append(c) }
                return all
            }
            for (familyID, used, rest) in chains {
                for hash in used { #expect(try await store.refreshTokenIsUnused(hash: hash) == false) }
                let (last, family) = try #require(try await store.refreshToken(hash: rest.last!))
                #expect(last.usedAt == nil && family.lastUsedAt == Fixture.t0 + TimeInterval(steps))
                for loser in rest.dropLast() { #expect(try await store.refreshToken(hash: loser) == nil, "a losing successor is not stored") }
                #expect(family.id == familyID)
            }
            let audited = try await store.auditEvents(AuditQuery(type: "token.refresh", limit: 1000))
            #expect(audited.count == 16 * steps, "one audit row per rotation that happened")
            #expect(Set(audited.map { "\($0.details["family"]!)/\($0.details["step"]!)" }).count == 16 * steps)
            if let sql = store as? SQLStorage {
                #expect(sql.rotations.statistics.largest > 1, "rotations arriving together were written together")
            }
        }
    }

    /// One rotation of many fails on its own data (its successor's hash exists already): it fails
    /// alone, its token stays unused and unaudited, and the others rotate.
    @Test(arguments: Backends.all)
    func aRotationThatFailsFailsAloneAndLeavesNothingHalfWritten(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            for round in 0..<3 {
                var starts: [(RefreshFamily, RefreshToken)] = []
                for _ in 0..<24 { starts.append(try await Fixture.startFamily(in: store)) }
                let at = Fixture.t0 + TimeInterval(100 + round)
                let clash = starts[0].1.hash  // the first family's token: the bad request's successor collides with it
                let outcomes = await withTaskGroup(of: (Int, Result<RefreshRotation, any Error>).self) { group in
                    for (i, (family, token)) in starts.enumerated() where i > 0 {
                        group.addTask {
                            let successor = Fixture.token(hash: i == 7 ? clash : Fixture.hash(), familyID: family.id, at: at)
                            do {
                                return (i, .success(try await store.rotateRefreshToken(hash: token.hash, now: at, successor: successor,
                                                                                       audit: Self.event(family.id, i, at: at))))
                            } catch { return (i, .failure(error)) }
                        }
                    }
                    var all: [Int: Result<RefreshRotation, any Error>] = [:]
                    for await (i, r) in group { all[i] = r }
                    return all
                }
                for (i, r) in outcomes {
                    if i == 7 {
                        #expect(throws: StorageError.self) { try r.get() }
                        #expect(try await store.refreshTokenIsUnused(hash: starts[i].1.hash), "the failed rotation left its token unused")
                    } else {
                        #expect(try r.get() == .rotated)
                    }
                }
                let audited = try await store.auditEvents(AuditQuery(type: "token.refresh", limit: 1000))
                    .filter { $0.time == at }
                #expect(audited.count == 22 && !audited.contains { $0.details["step"] == "7" }, "no audit row for the failed one")
                #expect(try await store.refreshTokenIsUnused(hash: clash), "the token it collided with is untouched")
            }
        }
    }

    /// A rolling upgrade: another replica's migration adds a column to the families while this one
    /// holds prepared statements. The token lookup names its columns, so it keeps answering (a
    /// prepared `SELECT f.*` fails with "cached plan must not change result type" until re-prepared).
    @Test(arguments: Backends.all)
    func aColumnAddedByAnotherReplicaDoesNotBreakTheTokenLookup(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let (family, first) = try await Fixture.startFamily(in: store)
            // Past PostgreSQL's five custom plans, on every pooled connection.
            for _ in 0..<24 { #expect(try await store.refreshToken(hash: first.hash)?.1 == family) }
            let sql = try #require(store as? SQLStorage)
            try await sql.backend.run { db in try await db.raw("ALTER TABLE refresh_families ADD COLUMN added_by_a_newer_replica TEXT").run() }
            for _ in 0..<24 {
                let (token, found) = try #require(try await store.refreshToken(hash: first.hash))
                #expect(token == first && found == family)
            }
        }
    }

    /// Every outcome a rotation can have, at once and at different instants, so they share batches:
    /// each must answer exactly as a rotation alone does.
    @Test(arguments: Backends.all)
    func everyOutcomeInOneBatchAnswersAsAlone(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            for round in 0..<4 {
                let base = Fixture.t0 + TimeInterval(1000 * round)
                var fresh: [RefreshToken] = []
                for _ in 0..<12 { fresh.append(try await Fixture.startFamily(in: store, at: base).1) }
                let (revokedFamily, revokedToken) = try await Fixture.startFamily(in: store, at: base)
                try await store.revokeFamily(id: revokedFamily.id, now: base + 1, reason: "test")
                let (usedFamily, usedToken) = try await Fixture.startFamily(in: store, at: base)
                #expect(try await store.rotateRefreshToken(hash: usedToken.hash, now: base + 2,
                                                           successor: Fixture.token(familyID: usedFamily.id, at: base + 2)) == .rotated)
                let unknown = Fixture.hash()
                let twice = fresh[0]
                // (hash, its family, the instant it is presented at)
                var requests: [(String, String, Date)] = fresh.enumerated().map { i, k in (k.hash, k.familyID, base + TimeInterval(10 + i)) }
                requests += [(twice.hash, twice.familyID, base + 40), (revokedToken.hash, revokedFamily.id, base + 41),
                             (usedToken.hash, usedFamily.id, base + 42), (unknown, usedFamily.id, base + 43)]
                let outcomes = try await withThrowingTaskGroup(of: (Int, RefreshRotation).self) { group in
                    for (i, (hash, family, at)) in requests.enumerated() {
                        group.addTask {
                            (i, try await store.rotateRefreshToken(hash: hash, now: at, successor: Fixture.token(familyID: family, at: at)))
                        }
                    }
                    var all: [Int: RefreshRotation] = [:]
                    for try await (i, o) in group { all[i] = o }
                    return all
                }
                for i in 1..<12 { #expect(outcomes[i] == .rotated) }
                // The token presented twice (at base + 10 and base + 40): one rotation, the other told when.
                let pair = [outcomes[0]!, outcomes[12]!]
                #expect(pair.filter { $0 == .rotated }.count == 1)
                let winnerTime = pair[0] == .rotated ? base + 10 : base + 40
                #expect(pair.contains(.alreadyUsed(usedAt: winnerTime)), "the loser learns the winner's instant: \(pair)")
                #expect(try await store.refreshToken(hash: twice.hash)?.0.usedAt == winnerTime)
                #expect(outcomes[13] == .notFound, "a revoked family's token")
                #expect(outcomes[14] == .alreadyUsed(usedAt: base + 2), "a token used before, with its own instant")
                #expect(outcomes[15] == .notFound, "an unknown token")
                for (i, k) in fresh.enumerated() where i > 0 {
                    #expect(try await store.refreshToken(hash: k.hash)?.0.usedAt == base + TimeInterval(10 + i), "each at its own instant")
                }
            }
            if let sql = store as? SQLStorage {
                #expect(sql.rotations.statistics.largest > 1, "the rotations shared batches")
            }
        }
    }
}
