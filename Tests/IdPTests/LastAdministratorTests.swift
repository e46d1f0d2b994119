import Foundation
import Logging
import Testing
@testable import IdP

/// Nobody can take administration away from themself, and the CLI cannot remove the last active
/// local administrator without --force: otherwise nobody could manage the portal.
@Suite struct LastAdministrator {
    @Test func theLastActiveAdministratorCannotBeDisabledDeletedOrDemotedFromTheCLI() async throws {
        try await Harness.with { h async throws in
            let root = try await h.users.add(username: "root", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
            await #expect(throws: UserAdminError.self) { try await h.users.setDisabled("ROOT", disabled: true, actor: "cli") }
            await #expect(throws: UserAdminError.self) { try await h.users.delete(" Root ", actor: "cli") }
            await #expect(throws: UserAdminError.self) { try await h.users.setAdmin("root", isAdmin: false, actor: "cli") }
            let still = try #require(try await h.store.user(id: root.id))
            #expect(still.isAdmin && !still.disabled)
            // --force: directory administrators remain, the operator says.
            try await h.users.setDisabled("root", disabled: true, actor: "cli", force: true)
            #expect(try await h.store.user(id: root.id)?.disabled == true)
            // A disabled administrator does not count; an enabled one does.
            let other = try await h.users.add(username: "other", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
            await #expect(throws: UserAdminError.self) { try await h.users.delete("other", actor: "cli") }
            try await h.users.setDisabled("root", disabled: false, actor: "cli")
            try await h.users.setAdmin("other", isAdmin: false, actor: "cli")
            #expect(try await h.store.user(id: other.id)?.isAdmin == false)
            // People who are not administrators are never protected by the rule.
            try await h.users.delete("alice", actor: "cli")
        }
    }

    @Test func anAdministratorCannotRemoveThemselfByAnySpellingButMayRemoveAnother() async throws {
        try await Harness.with { h async throws in
            let root = try await h.users.add(username: "root", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
            for spelling in ["root", "ROOT", " Root "] {
                await #expect(throws: UserAdminError.self) { try await h.users.setDisabled(spelling, disabled: true, actor: "root", actorID: root.id) }
                await #expect(throws: UserAdminError.self) { try await h.users.delete(spelling, actor: "root", actorID: root.id) }
                await #expect(throws: UserAdminError.self) { try await h.users.setAdmin(spelling, isAdmin: false, actor: "root", actorID: root.id) }
            }
            // An administrator through admin_groups (here a directory person, not a local user) removes the only
            // local administrator: they stay an administrator themselves, so the portal keeps one.
            try await h.users.setAdmin("root", isAdmin: false, actor: "opsy", actorID: "directory-subject-of-opsy")
            #expect(try await h.store.user(id: root.id)?.isAdmin == false)
        }
    }

    @Test func localMembersOfAdminGroupsCountAsAdministrators() async throws {
        try await Harness.with { h async throws in
            let users = UserAdmin(store: h.store, hasher: h.hasher, passwords: PasswordPolicy(), clock: h.clock, random: SystemRandom(),
                                  logger: Logger(label: "test"), adminGroups: ["portal-admins"], signout: Signout(provider: h.provider))
            _ = try await users.add(username: "root", password: Harness.password, email: "", displayName: "", groups: [], isAdmin: true, actor: "test")
            _ = try await users.add(username: "opsy", password: Harness.password, email: "", displayName: "", groups: ["portal-admins"], isAdmin: false, actor: "test")
            try await users.setDisabled("root", disabled: true, actor: "cli")  // opsy remains
            await #expect(throws: UserAdminError.self) { try await users.setDisabled("opsy", disabled: true, actor: "cli") }
        }
    }
}
