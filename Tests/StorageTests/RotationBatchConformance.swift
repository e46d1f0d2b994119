import Foundation
import IdP
@testable import Storage
import Testing

/// Rotations arriving together are written together (`RotationBatcher`): every one of them must
/// still be single use, audited only when it happened, and fail alone.
@Suite("Storage conformance: rotations written together")
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
}
