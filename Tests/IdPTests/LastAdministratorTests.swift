import Foundation
import Testing
@testable import IdP

/// Nobody can take administration away from themself, or from the last active administrator:
/// otherwise only the CLI could bring the portal back.
@Suite struct LastAdministrator {
    @Test func theLastActiveAdministratorCannotBeDisabledDeletedOrDemoted() async throws {
        try await Harness.with { h async throws in
        let root = try await h.users.add(username: "root", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
        await #expect(throws: UserAdminError.self) { try await h.users.setDisabled("ROOT", disabled: true, actor: "cli") }
        await #expect(throws: UserAdminError.self) { try await h.users.delete(" Root ", actor: "cli") }
        await #expect(throws: UserAdminError.self) { try await h.users.setAdmin("root", isAdmin: false, actor: "cli") }
        let still = try #require(try await h.store.user(id: root.id))
        #expect(still.isAdmin && !still.disabled)

        // A second administrator: now root may go, but not by its own hand.
        let other = try await h.users.add(username: "other", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
        do {
            try await h.users.setDisabled("ROOT", disabled: true, actor: "root", actorID: root.id)
            Issue.record("disabled themself")
        } catch let e as UserAdminError { #expect(e.description.contains("yourself")) }
        try await h.users.setDisabled("root", disabled: true, actor: "other", actorID: other.id)
        // A disabled administrator does not count: other is now the last one.
        await #expect(throws: UserAdminError.self) { try await h.users.delete("other", actor: "cli") }
        try await h.users.setDisabled("root", disabled: false, actor: "other", actorID: other.id)
        try await h.users.setAdmin("other", isAdmin: false, actor: "root", actorID: root.id)
        #expect(try await h.store.user(id: other.id)?.isAdmin == false)
        // People who are not administrators are never protected by the rule.
        try await h.users.delete("alice", actor: "root", actorID: root.id)
        }
    }
}
