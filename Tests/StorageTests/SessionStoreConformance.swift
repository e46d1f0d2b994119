import Foundation
import IdP
import Testing

@Suite("Storage conformance: sessions and pending authorizations")
struct SessionStoreConformance {
    static func session(user: String, at time: Date = Fixture.t0, ttl: TimeInterval = 3600) -> LoginSession {
        LoginSession(hash: Fixture.hash(), userID: user, authTime: time - 5, authMethod: "password", createdAt: time, expiresAt: time + ttl)
    }

    static func pending(at time: Date = Fixture.t0, ttl: TimeInterval = 600) -> PendingAuthorization {
        let request = AuthorizationRequest(clientID: "kubernetes", redirectURI: "http://localhost:8000", scopes: ["openid", "groups"],
                                           state: "st\u{e4}te & more", nonce: "n-0S6_WzA2Mj",
                                           codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", prompt: ["login"], maxAge: 300)
        return PendingAuthorization(id: UUID().uuidString, browserHash: Fixture.hash(), request: request, createdAt: time, expiresAt: time + ttl)
    }

    @Test(arguments: Backends.all)
    func sessionsRoundTripAndDelete(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let s = Self.session(user: "alice")
            try await store.createSession(s)
            #expect(try await store.session(hash: s.hash) == s)
            #expect(try await store.session(hash: Fixture.hash()) == nil)
            try await store.deleteSession(hash: s.hash)
            #expect(try await store.session(hash: s.hash) == nil)
            try await store.deleteSession(hash: s.hash)  // deleting nothing is fine
        }
    }

    @Test(arguments: Backends.all)
    func aPersonsLiveSessionsAreListedNewestFirst(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let old = Self.session(user: "alice", at: Fixture.t0), new = Self.session(user: "alice", at: Fixture.t0 + 60)
            let ended = Self.session(user: "alice", at: Fixture.t0 - 7200, ttl: 3600), other = Self.session(user: "bob")
            for s in [old, new, ended, other] { try await store.createSession(s) }
            #expect(try await store.sessions(userID: "alice", now: Fixture.t0 + 61) == [new, old], "live only, newest first, alice only")
            #expect(try await store.sessions(userID: "nobody", now: Fixture.t0).isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func deletingAUsersSessionsLeavesOtherUsersSessions(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let a1 = Self.session(user: "alice"), a2 = Self.session(user: "alice"), b = Self.session(user: "bob")
            for s in [a1, a2, b] { try await store.createSession(s) }
            try await store.deleteSessions(userID: "alice", except: nil)
            #expect(try await store.session(hash: a1.hash) == nil)
            #expect(try await store.session(hash: a2.hash) == nil)
            #expect(try await store.session(hash: b.hash) == b)
        }
    }

    @Test(arguments: Backends.all)
    func pendingAuthorizationsRoundTripAndDelete(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let p = Self.pending()
            try await store.createPendingAuthorization(p)
            #expect(try await store.pendingAuthorization(id: p.id) == p)
            #expect(try await store.pendingAuthorization(id: "unknown") == nil)
            try await store.deletePendingAuthorization(id: p.id)
            #expect(try await store.pendingAuthorization(id: p.id) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func aMinimalPendingAuthorizationRoundTrips(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let request = AuthorizationRequest(clientID: "web", redirectURI: "https://web.example.com/cb", scopes: ["openid"])
            let p = PendingAuthorization(id: "p1", browserHash: Fixture.hash(), request: request, createdAt: Fixture.t0,
                                         expiresAt: Fixture.t0 + 600)
            try await store.createPendingAuthorization(p)
            #expect(try await store.pendingAuthorization(id: "p1") == p)
        }
    }
}
