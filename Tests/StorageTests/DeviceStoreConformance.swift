import Foundation
import IdP
import Testing

/// RFC 8628 device grants: one decision, polling with slow_down, one redemption, on every backend.
@Suite("Storage conformance: device grants")
struct DeviceStoreConformance {
    static func grant(code: String = "BCDFGHJK", client: String = "kubernetes", at t: Date = Fixture.t0, ttl: TimeInterval = 600) -> DeviceGrant {
        DeviceGrant(deviceHash: Fixture.hash(), userCode: code, clientID: client, scopes: ["openid", "groups"], createdAt: t, expiresAt: t + ttl,
                    interval: 5, address: "192.0.2.9", userAgent: "kubectl-portal/0.1")
    }

    @Test(arguments: Backends.all)
    func aGrantIsDecidedOnceAndRedeemedOnce(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            let g = Self.grant()
            try await store.createDeviceGrant(g)
            await #expect(throws: StorageError.self) { try await store.createDeviceGrant(Self.grant()) }  // the user code is taken
            #expect(try await store.deviceGrant(userCode: "BCDFGHJK") == g)
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "other", now: t + 1) == .notFound, "another client's code")
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 1) == .pending)
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 3) == .slowDown(interval: 10))
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 8) == .slowDown(interval: 15),
                    "10 s had not passed since the last poll")
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 30) == .pending)

            async let a = store.decideDeviceGrant(userCode: "BCDFGHJK", now: t + 31, approve: true, userID: "alice", authTime: t,
                                                  authMethod: "password", sessionID: "sid-1")
            async let b = store.decideDeviceGrant(userCode: "BCDFGHJK", now: t + 31, approve: false, userID: "mallory", authTime: t,
                                                  authMethod: "password", sessionID: "sid-2")
            #expect([try await a, try await b].filter { $0 }.count == 1, "one decision")
            let decided = try #require(try await store.deviceGrant(userCode: "BCDFGHJK"))
            guard decided.status == .approved else { return }  // the denial won the race: nothing more to check
            #expect(decided.userID == "alice" && decided.sessionID == "sid-1" && decided.decidedAt == t + 31)
            guard case .approved(let approved) = try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 40)
            else { Issue.record("not approved"); return }
            #expect(approved.userID == "alice")

            var grant = Fixture.grant(userID: "alice")
            grant.sessionID = "sid-1"
            let f1 = RefreshFamily(id: "dev-f1", grant: grant, createdAt: t + 40, expiresAt: t + 3600, purpose: "device")
            let f2 = RefreshFamily(id: "dev-f2", grant: grant, createdAt: t + 40, expiresAt: t + 3600, purpose: "device")
            async let r1 = store.redeemDeviceGrant(deviceHash: g.deviceHash, family: f1, firstToken: Fixture.token(familyID: "dev-f1"))
            async let r2 = store.redeemDeviceGrant(deviceHash: g.deviceHash, family: f2, firstToken: Fixture.token(familyID: "dev-f2"))
            #expect([try await r1, try await r2].filter { $0 }.count == 1, "one redemption")
            #expect(try await [store.family(id: "dev-f1"), store.family(id: "dev-f2")].compactMap { $0 }.count == 1, "and one family")
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: t + 50) == .redeemed)
        }
    }

    @Test(arguments: Backends.all)
    func expiredGrantsCannotBeDecidedAndAreReportedExpired(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let g = Self.grant(code: "ZXWVTSRQ", ttl: 60)
            try await store.createDeviceGrant(g)
            #expect(try await store.decideDeviceGrant(userCode: "ZXWVTSRQ", now: Fixture.t0 + 61, approve: true, userID: "alice",
                                                      authTime: Fixture.t0, authMethod: "password", sessionID: "s") == false)
            #expect(try await store.pollDeviceGrant(deviceHash: g.deviceHash, clientID: "kubernetes", now: Fixture.t0 + 61) == .expired)
            _ = try await store.purgeExpired(now: Fixture.t0 + 60 + 3601)
            #expect(try await store.deviceGrant(userCode: "ZXWVTSRQ") == nil, "purged an hour after it expired")
        }
    }
}
