import Foundation
import IdP
import Testing

/// Issue 15: what the storage keeps so sessions can end — a browser session's public id and idle
/// clock, which session started a family, labels, client logout settings, the back-channel queue.
@Suite("Storage conformance: sessions that can end")
struct SessionEndingConformance {
    static func browser(user: String, sid: String = UUID().uuidString, at t: Date = Fixture.t0) -> LoginSession {
        LoginSession(hash: Fixture.hash(), sid: sid, userID: user, authTime: t, authMethod: "password", createdAt: t, expiresAt: t + 3600,
                     lastSeenAt: t, address: "192.0.2.7", userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    }

    @Test(arguments: Backends.all)
    func aSessionIsFoundByItsPublicIdAndItsActivityIsStamped(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let s = Self.browser(user: "alice", sid: "sid-a")
            try await store.createSession(s)
            #expect(try await store.session(hash: s.hash) == s, "every field round-trips")
            #expect(try await store.session(sid: "sid-a") == s)
            #expect(try await store.session(sid: "sid-unknown") == nil)
            try await store.touchSession(hash: s.hash, now: Fixture.t0 + 90)
            #expect(try await store.session(sid: "sid-a")?.lastSeenAt == Fixture.t0 + 90)
            try await store.touchSession(hash: s.hash, now: Fixture.t0 + 30)  // never moves backwards
            #expect(try await store.session(sid: "sid-a")?.lastSeenAt == Fixture.t0 + 90)
        }
    }

    @Test(arguments: Backends.all)
    func endingEverySessionButOneKeepsExactlyThatOne(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let keep = Self.browser(user: "alice"), other1 = Self.browser(user: "alice"), other2 = Self.browser(user: "alice")
            let bob = Self.browser(user: "bob")
            for s in [keep, other1, other2, bob] { try await store.createSession(s) }
            #expect(try await store.deleteSessions(userID: "alice", except: keep.hash) == 2)
            #expect(try await store.sessions(userID: "alice", now: Fixture.t0) == [keep])
            #expect(try await store.session(hash: bob.hash) == bob)
            #expect(try await store.deleteSessions(userID: "alice", except: nil) == 1)
            #expect(try await store.sessions(userID: "alice", now: Fixture.t0).isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func aFamilyRemembersItsBrowserSessionPurposeAndLabel(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            // Through a code (the session travels on the code) and directly (the kubectl page).
            var code = Fixture.code(userID: "alice")
            code.grant.sessionID = "sid-1"
            try await store.createCode(code)
            #expect(try await store.code(hash: code.hash)?.grant.sessionID == "sid-1")
            var viaCode = RefreshFamily(id: "f-code", grant: code.grant, createdAt: Fixture.t0, expiresAt: Fixture.t0 + 3600, purpose: "signin")
            viaCode.address = "192.0.2.1"
            #expect(try await store.redeemCode(hash: code.hash, now: Fixture.t0, family: viaCode, firstToken: Fixture.token(familyID: "f-code")) == .redeemed)
            var grant = Fixture.grant(userID: "alice")
            grant.sessionID = "sid-1"
            let direct = RefreshFamily(id: "f-page", grant: grant, createdAt: Fixture.t0 + 1, expiresAt: Fixture.t0 + 3600, purpose: "kubectl command")
            try await store.startFamily(direct, firstToken: Fixture.token(familyID: "f-page"))
            var elsewhere = Fixture.grant(userID: "alice")
            elsewhere.sessionID = "sid-2"
            try await store.startFamily(RefreshFamily(id: "f-other", grant: elsewhere, createdAt: Fixture.t0, expiresAt: Fixture.t0 + 3600),
                                        firstToken: Fixture.token(familyID: "f-other"))

            #expect(try await store.families(sessionID: "sid-1").map(\.id) == ["f-page", "f-code"], "newest first, that session only")
            #expect(try await store.families(sessionID: "").isEmpty, "no session, no families")
            #expect(try await store.family(id: "f-page") == direct)
            #expect(try await store.family(id: "f-code")?.purpose == "signin")

            #expect(try await store.setFamilyLabel(id: "f-page", userID: "alice", label: "work laptop"))
            #expect(try await store.setFamilyLabel(id: "f-page", userID: "mallory", label: "mine now") == false, "only its owner names it")
            #expect(try await store.setFamilyLabel(id: "f-none", userID: "alice", label: "x") == false)
            #expect(try await store.family(id: "f-page")?.label == "work laptop")
            // Revoked families are still listed for the session (logout must know who to tell).
            try await store.revokeFamily(id: "f-page", now: Fixture.t0 + 5, reason: "signed out")
            #expect(try await store.families(sessionID: "sid-1").count == 2)
        }
    }

    @Test(arguments: Backends.all)
    func clientsKeepTheirLogoutAndIntrospectionSettings(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            var c = Fixture.client(id: "app")
            c.postLogoutRedirectURIs = ["https://app.example.com/bye", "https://app.example.com/bye?x=1"]
            c.backchannelLogoutURI = "https://app.example.com/backchannel"
            c.introspectAll = true
            try await store.createClient(c)
            #expect(try await store.client(id: "app") == c)
            try await store.createClient(Fixture.client(id: "plain"))
            #expect(try await store.client(id: "plain")?.postLogoutRedirectURIs == [])
            #expect(try await store.client(id: "plain")?.introspectAll == false)
        }
    }

    @Test(arguments: Backends.all)
    func eachLogoutAttemptIsClaimedOnceAndTheQueueEmptiesPastItsDeadline(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            let a = LogoutDelivery(id: "d-a", clientID: "app", uri: "https://app/bc", subject: "alice", sid: "sid-1", createdAt: t,
                                   nextAttemptAt: t, deadline: t + 600)
            let later = LogoutDelivery(id: "d-later", clientID: "app", uri: "https://app/bc", subject: "bob", sid: "sid-2", createdAt: t,
                                       nextAttemptAt: t + 30, deadline: t + 600)
            // Queued the only way there is: with the families whose ending owes them.
            let (fa, _) = try await Fixture.startFamily(in: store, userID: "alice")
            let (fb, _) = try await Fixture.startFamily(in: store, userID: "bob")
            #expect(try await store.endFamilies(ids: [fa.id, fb.id], now: t, reason: "signed out", logouts: [fa.id: a, fb.id: later]).count == 2)
            #expect(try await store.dueLogouts(now: t, limit: 10) == [a])
            // Two replicas race for the same attempt: one wins.
            async let one = store.claimLogout(id: "d-a", attempts: 0, nextAttemptAt: t + 2)
            async let two = store.claimLogout(id: "d-a", attempts: 0, nextAttemptAt: t + 2)
            let wins = [try await one, try await two].filter { $0 }.count
            #expect(wins == 1)
            #expect(try await store.dueLogouts(now: t + 1, limit: 10).isEmpty, "the claimed attempt moved on")
            let due = try await store.dueLogouts(now: t + 30, limit: 10)
            #expect(due.map(\.id) == ["d-a", "d-later"])
            #expect(due.first?.attempts == 1)
            try await store.deleteLogout(id: "d-a")
            #expect(try await store.dueLogouts(now: t + 30, limit: 10).map(\.id) == ["d-later"])
            #expect(try await store.dueLogouts(now: t + 600, limit: 10).isEmpty, "past its deadline nothing is sent")
            _ = try await store.purgeExpired(now: t + 601)
            #expect(try await store.claimLogout(id: "d-later", attempts: 0, nextAttemptAt: t + 700) == false, "purged")
        }
    }

    @Test(arguments: Backends.all)
    func endingFamiliesQueuesTheirLogoutsInTheSameTransactionAndOnlyOnce(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            let (f1, _) = try await Fixture.startFamily(in: store, userID: "alice")
            let (f2, _) = try await Fixture.startFamily(in: store, userID: "alice")
            let (gone, _) = try await Fixture.startFamily(in: store, userID: "alice")
            try await store.revokeFamily(id: gone.id, now: t, reason: "earlier")
            let shared = LogoutDelivery(id: "d-shared", clientID: "app", uri: "https://app/bc", subject: "alice", sid: "sid-1", createdAt: t,
                                        nextAttemptAt: t, deadline: t + 600)
            let forGone = LogoutDelivery(id: "d-gone", clientID: "app", uri: "https://app/bc", subject: "alice", sid: "sid-9", createdAt: t,
                                         nextAttemptAt: t, deadline: t + 600)
            let revoked = try await store.endFamilies(ids: [f1.id, f2.id, gone.id], now: t + 1, reason: "signed out",
                                                      logouts: [f1.id: shared, f2.id: shared, gone.id: forGone])
            #expect(Set(revoked) == [f1.id, f2.id], "an already revoked family is not revoked again")
            #expect(try await store.dueLogouts(now: t + 1, limit: 10).map(\.id) == ["d-shared"], "one delivery for both, none for the old one")
            #expect(try await store.family(id: f1.id)?.revokeReason == "signed out")
            #expect(try await store.endFamilies(ids: [f1.id], now: t + 2, reason: "again", logouts: [f1.id: shared]).isEmpty)
            #expect(try await store.dueLogouts(now: t + 2, limit: 10).count == 1, "nothing queued twice")
        }
    }
}
