import Foundation
import IdP
import Testing

@Suite("First-run setup link")
struct SetupTests {
    static func service(_ h: Harness, lifetime: TimeInterval = 3600) -> SetupService {
        SetupService(store: h.store, hasher: h.hasher, passwords: PasswordPolicy(), linkLifetime: lifetime, clock: h.clock,
                     random: SystemRandom(), logger: Harness.logger)
    }

    @Test func theSetupLinkWorksOnce() async throws {
        try await Harness.with { h async throws in
            let setup = Self.service(h)
            let token = try #require(try await setup.issueTokenIfNeeded())
            #expect(token.utf8.count == 43)
            #expect(try await setup.tokenIsUsable(token))

            let outcome = try await setup.complete(token: token, username: "Root", password: "a long admin password",
                                                   confirmation: "a long admin password", remoteAddress: Harness.remote)
            guard case .created(let admin) = outcome else { Issue.record("expected .created, got \(outcome)"); return }
            #expect(admin.username == "root")
            #expect(admin.isAdmin)
            #expect(try await h.store.adminExists())
            #expect(try await h.store.user(id: admin.id)?.passwordHash == (try await h.hasher.hash("a long admin password")))
            #expect(try await setup.tokenIsUsable(token) == false)

            let again = try await setup.complete(token: token, username: "mallory", password: "another long password",
                                                 confirmation: "another long password", remoteAddress: Harness.remote)
            #expect(again == .adminExists || again == .invalidToken)
            #expect(try await h.store.user(username: "mallory") == nil)
            #expect(try await setup.issueTokenIfNeeded() == nil, "no new link once an admin exists")
        }
    }

    @Test func anExpiredLinkCreatesNobody() async throws {
        try await Harness.with { h async throws in
            let setup = Self.service(h, lifetime: 600)
            let token = try #require(try await setup.issueTokenIfNeeded())
            h.clock.advance(601)
            #expect(try await setup.tokenIsUsable(token) == false)
            let outcome = try await setup.complete(token: token, username: "root", password: "a long admin password",
                                                   confirmation: "a long admin password", remoteAddress: Harness.remote)
            #expect(outcome == .invalidToken)
            #expect(try await h.store.user(username: "root") == nil)
            #expect(try await h.store.adminExists() == false)
        }
    }

    @Test func aRejectedFormLeavesTheLinkUsable() async throws {
        try await Harness.with { h async throws in
            let setup = Self.service(h)
            let token = try #require(try await setup.issueTokenIfNeeded())
            let mismatch = try await setup.complete(token: token, username: "root", password: "a long admin password",
                                                    confirmation: "a long admin passwort", remoteAddress: Harness.remote)
            guard case .rejected = mismatch else { Issue.record("expected .rejected, got \(mismatch)"); return }
            let short = try await setup.complete(token: token, username: "root", password: "short", confirmation: "short",
                                                 remoteAddress: Harness.remote)
            guard case .rejected = short else { Issue.record("expected .rejected, got \(short)"); return }
            let badName = try await setup.complete(token: token, username: "root admin", password: "a long admin password",
                                                   confirmation: "a long admin password", remoteAddress: Harness.remote)
            guard case .rejected = badName else { Issue.record("expected .rejected, got \(badName)"); return }
            #expect(try await setup.tokenIsUsable(token))
            #expect(try await h.store.adminExists() == false)
        }
    }

    @Test func completingOneLinkKillsTheOthers() async throws {
        try await Harness.with { h async throws in
            let setup = Self.service(h)
            let first = try #require(try await setup.issueTokenIfNeeded())
            let second = try #require(try await setup.issueTokenIfNeeded())
            guard case .created = try await setup.complete(token: second, username: "root", password: "a long admin password",
                                                           confirmation: "a long admin password", remoteAddress: Harness.remote) else {
                Issue.record("setup failed"); return
            }
            #expect(try await setup.tokenIsUsable(first) == false)
        }
    }

    @Test func aForgedLinkIsInvalid() async throws {
        try await Harness.with { h async throws in
            let setup = Self.service(h)
            _ = try await setup.issueTokenIfNeeded()
            for forged in [SystemRandom().token(byteCount: 32), "short"] {
                #expect(try await setup.tokenIsUsable(forged) == false)
                let outcome = try await setup.complete(token: forged, username: "root", password: "a long admin password",
                                                       confirmation: "a long admin password", remoteAddress: Harness.remote)
                #expect(outcome == .invalidToken)
            }
            #expect(try await h.store.adminExists() == false)
        }
    }
}
