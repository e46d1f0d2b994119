import Foundation
import IdP
import Testing

@Suite("Storage conformance: users")
struct UserStoreConformance {
    @Test(arguments: Backends.all)
    func createdUserReadsBackByIdAndByUsername(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice", groups: ["dev", "ops"], isAdmin: true)
            try await store.createUser(alice)
            #expect(try await store.user(id: alice.id) == alice)
            #expect(try await store.user(username: "alice") == alice)
            #expect(try await store.user(username: "ALICE") == nil, "lookup is by exact canonical username")
            #expect(try await store.user(id: "nobody") == nil)
        }
    }

    @Test(arguments: Backends.all)
    func userWithoutPasswordHashRoundTrips(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            var bob = Fixture.user(username: "bob")
            bob.passwordHash = nil
            try await store.createUser(bob)
            #expect(try await store.user(id: bob.id)?.passwordHash == nil)
        }
    }

    @Test(arguments: Backends.all)
    func creatingAUserWithATakenIdIsAConflict(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createUser(Fixture.user(id: "u1", username: "alice"))
            let error = await #expect(throws: StorageError.self) {
                try await store.createUser(Fixture.user(id: "u1", username: "bob"))
            }
            #expect(error?.isConflict == true)
            #expect(try await store.user(username: "bob") == nil)
        }
    }

    @Test(arguments: Backends.all)
    func creatingAUserWithATakenUsernameIsAConflict(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createUser(Fixture.user(id: "u1", username: "alice"))
            let error = await #expect(throws: StorageError.self) {
                try await store.createUser(Fixture.user(id: "u2", username: "alice"))
            }
            #expect(error?.isConflict == true)
            #expect(try await store.user(id: "u2") == nil)
        }
    }

    @Test(arguments: Backends.all)
    func updateAppliesTheBodyToTheCurrentRowAndReturnsIt(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice", groups: ["dev"])
            try await store.createUser(alice)
            let later = Fixture.t0 + 60
            let updated = try await store.updateUser(id: alice.id) { u in
                #expect(u == alice, "the body sees the stored row")
                u.groups.append("ops")
                u.disabled = true
                u.displayName = "Alice Liddell"
                u.passwordHash = nil
                u.updatedAt = later
            }
            #expect(updated.groups == ["dev", "ops"])
            #expect(try await store.user(id: alice.id) == updated)
            #expect(updated.createdAt == alice.createdAt)
            #expect(updated.updatedAt == later)
        }
    }

    @Test(arguments: Backends.all)
    func updatingAnUnknownUserIsNotFound(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let error = await #expect(throws: StorageError.self) {
                try await store.updateUser(id: "ghost") { $0.disabled = true }
            }
            #expect(error?.isNotFound == true)
        }
    }

    @Test(arguments: Backends.all)
    func renamingToATakenUsernameIsAConflictAndChangesNothing(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice")
            try await store.createUser(alice)
            try await store.createUser(Fixture.user(username: "bob"))
            let error = await #expect(throws: StorageError.self) {
                try await store.updateUser(id: alice.id) { $0.username = "bob"; $0.disabled = true }
            }
            #expect(error?.isConflict == true)
            #expect(try await store.user(id: alice.id) == alice)
        }
    }

    @Test(arguments: Backends.all)
    func aBodyThatThrowsLeavesTheRowUnchanged(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice")
            try await store.createUser(alice)
            await #expect(throws: (any Error).self) {
                try await store.updateUser(id: alice.id) { u in
                    u.disabled = true
                    throw RefusedByBody()
                }
            }
            #expect(try await store.user(id: alice.id) == alice)
        }
    }

    /// The caller's own refusal must reach the caller as itself, not as "storage unavailable".
    @Test(arguments: Backends.all)
    func anErrorThrownByTheBodyReachesTheCallerUnchanged(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice")
            try await store.createUser(alice)
            await #expect(throws: RefusedByBody.self) {
                try await store.updateUser(id: alice.id) { _ in throw RefusedByBody() }
            }
        }
    }

    @Test(arguments: Backends.all)
    func concurrentUpdatesOfOneUserAreNotLost(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice")
            try await store.createUser(alice)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<30 {
                    group.addTask { try await store.updateUser(id: alice.id) { $0.groups.append("g\(i)") } }
                }
                try await group.waitForAll()
            }
            let groups = try #require(try await store.user(id: alice.id)).groups
            #expect(groups.count == 30)
            #expect(Set(groups) == Set((0..<30).map { "g\($0)" }))
        }
    }

    @Test(arguments: Backends.all)
    func deleteRemovesTheUserOnce(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let alice = Fixture.user(username: "alice")
            try await store.createUser(alice)
            #expect(try await store.deleteUser(id: alice.id) == true)
            #expect(try await store.user(id: alice.id) == nil)
            #expect(try await store.user(username: "alice") == nil)
            #expect(try await store.deleteUser(id: alice.id) == false)
            // The username is free again.
            try await store.createUser(Fixture.user(username: "alice"))
        }
    }

    @Test(arguments: Backends.all)
    func listReturnsEveryUser(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.listUsers().isEmpty)
            let users = ["carol", "alice", "bob"].map { Fixture.user(username: $0) }
            for u in users { try await store.createUser(u) }
            let listed = try await store.listUsers()
            #expect(listed.count == 3)
            #expect(Set(listed.map(\.id)) == Set(users.map(\.id)))
            for u in users { #expect(listed.contains(u)) }
        }
    }

    @Test(arguments: Backends.all)
    func onlyAnEnabledAdminCountsAsAnAdmin(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.adminExists() == false)
            try await store.createUser(Fixture.user(username: "alice"))
            #expect(try await store.adminExists() == false, "a plain user is no admin")
            let root = Fixture.user(username: "root", isAdmin: true, disabled: true)
            try await store.createUser(root)
            #expect(try await store.adminExists() == false, "a disabled admin does not count")
            try await store.updateUser(id: root.id) { $0.disabled = false }
            #expect(try await store.adminExists() == true)
            try await store.updateUser(id: root.id) { $0.isAdmin = false }
            #expect(try await store.adminExists() == false)
        }
    }
}

@Suite("Storage conformance: clients")
struct ClientStoreConformance {
    @Test(arguments: Backends.all)
    func createdClientsReadBack(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let web = Fixture.client(id: "web")
            let cli = Fixture.client(id: "cli", isPublic: true)
            try await store.createClient(web)
            try await store.createClient(cli)
            #expect(try await store.client(id: "web") == web)
            #expect(try await store.client(id: "cli") == cli)
            #expect(try await store.client(id: "nope") == nil)
            let listed = try await store.listClients()
            #expect(listed.count == 2)
            #expect(listed.contains(web) && listed.contains(cli))
        }
    }

    @Test(arguments: Backends.all)
    func creatingAClientWithATakenIdIsAConflict(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createClient(Fixture.client(id: "web"))
            let error = await #expect(throws: StorageError.self) {
                try await store.createClient(Fixture.client(id: "web", isPublic: true))
            }
            #expect(error?.isConflict == true)
            #expect(try await store.client(id: "web")?.isPublic == false)
        }
    }

    @Test(arguments: Backends.all)
    func deleteRemovesTheClientOnce(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createClient(Fixture.client(id: "web"))
            #expect(try await store.deleteClient(id: "web") == true)
            #expect(try await store.client(id: "web") == nil)
            #expect(try await store.deleteClient(id: "web") == false)
            #expect(try await store.listClients().isEmpty)
        }
    }
}
