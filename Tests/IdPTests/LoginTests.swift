import Foundation
import IdP
import Testing

@Suite("Password login and throttling")
struct LoginTests {
    static func service(_ h: Harness, policy: LoginPolicy = LoginPolicy()) -> LoginService {
        LoginService(store: h.store, authenticators: [h.authenticator], policy: policy, tokens: TokenPolicy(), clock: h.clock,
                     random: SystemRandom(), logger: Harness.logger)
    }

    @Test func theRightPasswordLogsIn() async throws {
        try await Harness.with { h async throws in
            let login = Self.service(h)
            let outcome = try await login.login(username: "  Alice ", password: Harness.password, remoteAddress: Harness.remote)
            #expect(outcome == .success(Identity(user: h.alice), method: "password"))
            let audit = try await h.auditEvents(type: "login.success")
            #expect(audit.first?.subject == h.alice.id)
        }
    }

    @Test func anUnknownUserAndAWrongPasswordGetTheSameAnswer() async throws {
        try await Harness.with { h async throws in
            let login = Self.service(h)
            let unknown = try await login.login(username: "mallory", password: "whatever-password", remoteAddress: "192.0.2.1")
            let wrong = try await login.login(username: "alice", password: "wrong-password", remoteAddress: "192.0.2.2")
            #expect(unknown == .invalidCredentials)
            #expect(wrong == .invalidCredentials)
            let failures = try await h.auditEvents(type: "login.failure")
            #expect(failures.count == 2)
            #expect(Set(failures.map { $0.details }).count == 1, "the audit reason does not tell them apart either")
            // The unknown user still cost a hash verification (same timing as a wrong password).
            #expect(await h.hasher.verifications.value == 2)
        }
    }

    @Test(arguments: ["", " ", "\t\n", "   \u{3000}"])
    func aBlankPasswordIsRefusedWithoutAskingAnyAuthenticator(_ password: String) async throws {
        try await Harness.with { h async throws in
            let login = Self.service(h)
            #expect(try await login.login(username: "alice", password: password, remoteAddress: Harness.remote) == .invalidCredentials)
            #expect(await h.hasher.verifications.value == 0)
            let failure = try #require(try await h.auditEvents(type: "login.failure").first)
            #expect(failure.details["reason"] == "empty password")
            #expect(try await h.store.throttleState(key: "user:alice")?.failures == 1, "a blank password counts as a failure")
        }
    }

    @Test func repeatedFailuresLockTheAccountOut() async throws {
        try await Harness.with { h async throws in
            var policy = LoginPolicy()
            policy.maxFailuresPerUser = 5
            policy.lockout = 15 * 60
            let login = Self.service(h, policy: policy)
            for _ in 1..<5 {
                #expect(try await login.login(username: "alice", password: "guess-guess", remoteAddress: Harness.remote) == .invalidCredentials)
                h.clock.advance(1)
            }
            let fifth = try await login.login(username: "alice", password: "guess-guess", remoteAddress: Harness.remote)
            #expect(fifth == .lockedOut(until: h.clock.now() + 15 * 60))

            // While locked out, even the right password is refused, and no password is checked.
            let verifications = await h.hasher.verifications.value
            h.clock.advance(60)
            guard case .lockedOut = try await login.login(username: "alice", password: Harness.password, remoteAddress: "198.51.100.7") else {
                Issue.record("the right password got through a lockout"); return
            }
            #expect(await h.hasher.verifications.value == verifications)

            // Other accounts are not affected.
            _ = try await h.users.add(username: "bob", password: "bobs password", email: "", displayName: "", groups: [], isAdmin: false,
                                      actor: "test")
            guard case .success = try await login.login(username: "bob", password: "bobs password", remoteAddress: "198.51.100.8") else {
                Issue.record("bob was locked out with alice"); return
            }

            // After the lockout the right password works and clears the count.
            h.clock.advance(15 * 60)
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: Harness.remote) else {
                Issue.record("still locked after the lockout"); return
            }
            #expect(try await h.store.throttleState(key: "user:alice") == nil)
        }
    }

    @Test func aDisabledAccountCannotLogIn() async throws {
        try await Harness.with { h async throws in
            try await h.users.setDisabled("alice", disabled: true, actor: "admin")
            let outcome = try await Self.service(h).login(username: "alice", password: Harness.password, remoteAddress: Harness.remote)
            #expect(outcome == .invalidCredentials)
            #expect(try await h.auditEvents(type: "login.failure").first?.details["reason"] == "account disabled")
        }
    }

    @Test func aSessionEndsWhenTheAccountIsDisabled() async throws {
        try await Harness.with { h async throws in
            let login = Self.service(h)
            let (cookie, session) = try await login.startSession(identity: Identity(user: h.alice), method: "password")
            #expect(cookie.utf8.count == 43)
            #expect(try await h.store.session(hash: Secrets.sha256Hex(cookie)) == session)
            #expect(try await login.session(cookie: cookie)?.1.subject == h.alice.id)
            try await h.users.setDisabled("alice", disabled: true, actor: "admin")
            #expect(try await login.session(cookie: cookie) == nil)
        }
    }
}
