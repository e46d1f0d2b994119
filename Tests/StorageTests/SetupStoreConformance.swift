import Foundation
import IdP
import Testing

@Suite("Storage conformance: first-run setup")
struct SetupStoreConformance {
    static func token(at time: Date = Fixture.t0, ttl: TimeInterval = 3600) -> SetupToken {
        SetupToken(hash: Fixture.hash(), createdAt: time, expiresAt: time + ttl)
    }

    @Test(arguments: Backends.all)
    func setupTokensRoundTrip(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token()
            try await store.createSetupToken(t)
            #expect(try await store.setupToken(hash: t.hash) == t)
            #expect(try await store.setupToken(hash: Fixture.hash()) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func aValidTokenCreatesTheAdminAndIsUsedUp(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token()
            try await store.createSetupToken(t)
            let now = Fixture.t0 + 60
            let admin = Fixture.user(username: "root", isAdmin: true, at: now)
            #expect(try await store.completeSetup(hash: t.hash, now: now, admin: admin) == .created)
            #expect(try await store.adminExists())
            let stored = try #require(try await store.user(id: admin.id))
            #expect(stored.username == "root")
            #expect(stored.isAdmin && !stored.disabled)
            #expect(stored.passwordHash == admin.passwordHash)
            #expect(try await store.setupToken(hash: t.hash)?.usedAt == now)
        }
    }

    @Test(arguments: Backends.all)
    func aUsedTokenCreatesNoSecondAdmin(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token()
            try await store.createSetupToken(t)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0, admin: Fixture.user(username: "root", isAdmin: true)) == .created)
            let second = Fixture.user(username: "mallory", isAdmin: true)
            let again = try await store.completeSetup(hash: t.hash, now: Fixture.t0 + 1, admin: second)
            #expect(again == .adminExists || again == .invalidToken)
            #expect(try await store.user(id: second.id) == nil)
            #expect(try await store.listUsers().count == 1)
        }
    }

    @Test(arguments: Backends.all)
    func aUsedTokenIsInvalidEvenWhenTheAdminIsGoneAgain(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token()
            try await store.createSetupToken(t)
            let root = Fixture.user(username: "root", isAdmin: true)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0, admin: root) == .created)
            try await store.updateUser(id: root.id) { $0.disabled = true }
            let second = Fixture.user(username: "mallory", isAdmin: true)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0 + 1, admin: second) == .invalidToken)
            #expect(try await store.user(id: second.id) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func anExpiredTokenIsInvalidAndWritesNoUser(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token(ttl: 600)
            try await store.createSetupToken(t)
            let admin = Fixture.user(username: "root", isAdmin: true)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0 + 600, admin: admin) == .invalidToken)
            #expect(try await store.user(id: admin.id) == nil)
            #expect(try await store.adminExists() == false)
            #expect(try await store.setupToken(hash: t.hash)?.usedAt == nil)
        }
    }

    @Test(arguments: Backends.all)
    func anUnknownTokenIsInvalid(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let admin = Fixture.user(username: "root", isAdmin: true)
            #expect(try await store.completeSetup(hash: Fixture.hash(), now: Fixture.t0, admin: admin) == .invalidToken)
            #expect(try await store.listUsers().isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func anExistingAdminWinsOverAValidToken(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createUser(Fixture.user(username: "root", isAdmin: true))
            let t = Self.token()
            try await store.createSetupToken(t)
            let other = Fixture.user(username: "second", isAdmin: true)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0, admin: other) == .adminExists)
            #expect(try await store.user(id: other.id) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func aUsernameConflictThrowsAndLeavesTheTokenUnused(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createUser(Fixture.user(username: "alice"))  // not an admin
            let t = Self.token()
            try await store.createSetupToken(t)
            let admin = Fixture.user(username: "alice", isAdmin: true)
            let error = await #expect(throws: StorageError.self) {
                try await store.completeSetup(hash: t.hash, now: Fixture.t0 + 5, admin: admin)
            }
            #expect(error?.isConflict == true)
            // Nothing half-written: the token still works, no admin appeared.
            #expect(try await store.setupToken(hash: t.hash)?.usedAt == nil)
            #expect(try await store.adminExists() == false)
            #expect(try await store.user(id: admin.id) == nil)
            let retry = Fixture.user(username: "root", isAdmin: true)
            #expect(try await store.completeSetup(hash: t.hash, now: Fixture.t0 + 6, admin: retry) == .created)
        }
    }

    @Test(arguments: Backends.all)
    func parallelCompletionsOfOneTokenCreateExactlyOneAdmin(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Self.token()
            try await store.createSetupToken(t)
            let outcomes = try await withThrowingTaskGroup(of: SetupCompletion.self) { group in
                for i in 0..<20 {
                    let admin = Fixture.user(username: "admin\(i)", isAdmin: true)
                    group.addTask { try await store.completeSetup(hash: t.hash, now: Fixture.t0, admin: admin) }
                }
                var all: [SetupCompletion] = []
                for try await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.filter { $0 == .created }.count == 1)
            #expect(try await store.listUsers().count == 1)
        }
    }
}
