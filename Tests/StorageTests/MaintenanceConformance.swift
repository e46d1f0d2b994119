import Foundation
import IdP
import Testing

@Suite("Storage conformance: purging expired rows")
struct MaintenanceConformance {
    static let day: TimeInterval = 86400

    @Test(arguments: Backends.all)
    func pingAnswers(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in try await store.ping() }
    }

    @Test(arguments: Backends.all)
    func purgeRemovesLongExpiredRowsAndKeepsLiveOnes(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let now = Fixture.t0
            let longAgo = now - 3 * Self.day

            // Codes.
            let deadCode = Fixture.code(at: longAgo)
            let liveCode = Fixture.code(at: now - 10)
            try await store.createCode(deadCode)
            try await store.createCode(liveCode)

            // Pending authorizations.
            let deadPending = SessionStoreConformance.pending(at: longAgo)
            let livePending = SessionStoreConformance.pending(at: now - 10)
            try await store.createPendingAuthorization(deadPending)
            try await store.createPendingAuthorization(livePending)

            // Sessions.
            let deadSession = SessionStoreConformance.session(user: "alice", at: longAgo)
            let liveSession = SessionStoreConformance.session(user: "alice", at: now - 10)
            try await store.createSession(deadSession)
            try await store.createSession(liveSession)

            // Setup tokens.
            let deadSetup = SetupToken(hash: Fixture.hash(), createdAt: longAgo, expiresAt: longAgo + 3600)
            let liveSetup = SetupToken(hash: Fixture.hash(), createdAt: now - 10, expiresAt: now + 3600)
            try await store.createSetupToken(deadSetup)
            try await store.createSetupToken(liveSetup)

            // Throttle rows: a stale window, and a current one.
            _ = try await store.recordFailure(key: "user:stale", now: longAgo, window: 900, maxFailures: 5, lockout: 900)
            _ = try await store.recordFailure(key: "user:fresh", now: now - 10, window: 900, maxFailures: 5, lockout: 900)

            // Refresh families: one long past its absolute end (with a rotated token), one revoked long ago,
            // one live, one revoked just now (kept so replays are still recognised).
            let (expired, expiredFirst) = try await Fixture.startFamily(in: store, at: longAgo, lifetime: 12 * 3600)
            let expiredSecond = Fixture.token(familyID: expired.id, at: longAgo + 60)
            #expect(try await store.rotateRefreshToken(hash: expiredFirst.hash, now: longAgo + 60, successor: expiredSecond) == .rotated)
            let (revoked, revokedFirst) = try await Fixture.startFamily(in: store, at: longAgo, lifetime: 30 * Self.day)
            try await store.revokeFamily(id: revoked.id, now: longAgo + 120, reason: "test")
            let (live, liveFirst) = try await Fixture.startFamily(in: store, at: now - 600)
            let (justRevoked, justRevokedFirst) = try await Fixture.startFamily(in: store, at: now - 300)
            try await store.revokeFamily(id: justRevoked.id, now: now - 60, reason: "test")

            let removed = try await store.purgeExpired(now: now)

            #expect(try await store.code(hash: deadCode.hash) == nil)
            #expect(try await store.code(hash: liveCode.hash) != nil)
            #expect(try await store.pendingAuthorization(id: deadPending.id) == nil)
            #expect(try await store.pendingAuthorization(id: livePending.id) != nil)
            #expect(try await store.session(hash: deadSession.hash) == nil)
            #expect(try await store.session(hash: liveSession.hash) != nil)
            #expect(try await store.setupToken(hash: deadSetup.hash) == nil)
            #expect(try await store.setupToken(hash: liveSetup.hash) != nil)
            #expect(try await store.throttleState(key: "user:stale") == nil)
            #expect(try await store.throttleState(key: "user:fresh") != nil)
            #expect(try await store.family(id: expired.id) == nil)
            #expect(try await store.refreshToken(hash: expiredFirst.hash) == nil)
            #expect(try await store.refreshToken(hash: expiredSecond.hash) == nil)
            #expect(try await store.family(id: revoked.id) == nil)
            #expect(try await store.refreshToken(hash: revokedFirst.hash) == nil)
            #expect(try await store.family(id: live.id) != nil)
            #expect(try await store.refreshToken(hash: liveFirst.hash) != nil)
            #expect(try await store.family(id: justRevoked.id) != nil)
            #expect(try await store.refreshToken(hash: justRevokedFirst.hash) != nil)

            // 1 code + 2 codes behind the old families, 1 pending, 1 session, 1 setup token,
            // 1 throttle row, 3 refresh tokens, 2 families.
            #expect(removed == 12)
            #expect(try await store.purgeExpired(now: now) == 0, "a second purge finds nothing")
        }
    }

    @Test(arguments: Backends.all)
    func purgeKeepsALockedOutThrottleRow(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let now = Fixture.t0
            let longAgo = now - 3 * Self.day
            // Locked for a week, starting three days ago.
            let s = try await store.recordFailure(key: "user:locked", now: longAgo, window: 900, maxFailures: 1, lockout: 7 * Self.day)
            #expect(try #require(s.lockedUntil) > now)
            _ = try await store.purgeExpired(now: now)
            #expect(try await store.throttleState(key: "user:locked") != nil)
        }
    }

    /// The contract: purge removes "keys gone from JWKS" (expiresAt has passed).
    @Test(arguments: Backends.all)
    func purgeRemovesSigningKeysGoneFromJWKS(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let now = Fixture.t0
            let gone = Fixture.signingKey(kid: "gone", activatesAt: now - 40 * Self.day, retiresAt: now - 10 * Self.day,
                                          expiresAt: now - 10 * Self.day + 360)
            let retiring = Fixture.signingKey(kid: "retiring", activatesAt: now - 30 * Self.day, retiresAt: now - 60, expiresAt: now + 300)
            let current = Fixture.signingKey(kid: "current", activatesAt: now - 60)
            let next = Fixture.signingKey(kid: "next", activatesAt: now + 30 * Self.day)
            for k in [gone, retiring, current, next] { try await store.insertSigningKey(k) }
            let removed = try await store.purgeExpired(now: now)
            #expect(try await store.signingKeys().map(\.kid) == ["retiring", "current", "next"])
            #expect(removed == 1)
        }
    }
}
