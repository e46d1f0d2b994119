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
            #expect(try await h.store.throttleState(key: "pair:alice|\(Harness.remote)")?.failures == 1, "a blank password counts as a failure")
        }
    }

    @Test func failuresDelayThatAccountAtThatAddressOnly() async throws {
        try await Harness.with { h async throws in
            var policy = LoginPolicy()
            policy.maxFailuresPerUser = 5
            policy.lockout = 60
            let login = Self.service(h, policy: policy)
            let attacker = "203.0.113.66"
            for _ in 1..<5 {
                #expect(try await login.login(username: "alice", password: "guess-guess", remoteAddress: attacker) == .invalidCredentials)
                h.clock.advance(1)
            }
            let fifth = try await login.login(username: "alice", password: "guess-guess", remoteAddress: attacker)
            #expect(fifth == .lockedOut(until: h.clock.now() + 60))

            // While delayed, even the right password from that address is refused, and no password is checked.
            let verifications = await h.hasher.verifications.value
            h.clock.advance(10)
            guard case .lockedOut = try await login.login(username: "alice", password: Harness.password, remoteAddress: attacker) else {
                Issue.record("the right password got through a delay"); return
            }
            #expect(await h.hasher.verifications.value == verifications)

            // The same person from another address is not delayed by the attacker.
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: Harness.remote) else {
                Issue.record("an attacker's failures locked alice out at her own address"); return
            }

            // Each further failure after the delay doubles the next one (up to 16×).
            h.clock.advance(60)
            let sixth = try await login.login(username: "alice", password: "guess-guess", remoteAddress: attacker)
            #expect(sixth == .lockedOut(until: h.clock.now() + 120))
        }
    }

    @Test func familiarAddressesAreNeverDelayedByFailuresElsewhere() async throws {
        try await Harness.with { h async throws in
            var policy = LoginPolicy()
            policy.maxFailuresPerUser = 3
            policy.maxFailuresUnfamiliar = 10
            policy.maxFailuresPerAddress = 1000
            let login = Self.service(h, policy: policy)
            // alice signs in from home once: home becomes familiar.
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: "198.51.100.1") else {
                Issue.record("first sign-in failed"); return
            }
            // A botnet tries her account from 40 addresses.
            for i in 0..<40 {
                _ = try await login.login(username: "alice", password: "guess-\(i)", remoteAddress: "203.0.113.\(i)")
            }
            #expect(try await h.store.throttleState(key: "acct:alice")?.lockedUntil != nil, "the unfamiliar counter delays new addresses")
            // A new address is delayed …
            guard case .lockedOut = try await login.login(username: "alice", password: Harness.password, remoteAddress: "192.0.2.200") else {
                Issue.record("unfamiliar addresses were not delayed"); return
            }
            // … but home is not.
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: "198.51.100.1") else {
                Issue.record("alice was locked out at her familiar address"); return
            }
        }
    }

    @Test func aSprayingAddressIsDelayedOnlyForAccountsNeverUsedThere() async throws {
        try await Harness.with { h async throws in
            var policy = LoginPolicy()
            policy.maxFailuresPerAddress = 5
            let login = Self.service(h, policy: policy)
            let office = "198.51.100.50"
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: office) else {
                Issue.record("first sign-in failed"); return
            }
            _ = try await h.users.add(username: "bob", password: "bobs password", email: "", displayName: "", groups: [], isAdmin: false, actor: "t")
            for name in ["carol", "dave", "erin", "frank", "grace", "heidi"] {
                _ = try await login.login(username: name, password: "Winter2026!", remoteAddress: office)
            }
            #expect(try await h.store.throttleState(key: "addr:\(office)")?.lockedUntil != nil)
            // bob never signed in from the office: delayed there for now …
            guard case .lockedOut = try await login.login(username: "bob", password: "bobs password", remoteAddress: office) else {
                Issue.record("the spraying address was not delayed"); return
            }
            // … alice, who did, is not; and bob from elsewhere is not either.
            guard case .success = try await login.login(username: "alice", password: Harness.password, remoteAddress: office) else {
                Issue.record("a familiar account was delayed by a spray from its own address"); return
            }
            guard case .success = try await login.login(username: "bob", password: "bobs password", remoteAddress: "192.0.2.77") else {
                Issue.record("bob was delayed at another address"); return
            }
        }
    }

    @Test func ipv6AddressesAreCountedPerSlash64() {
        #expect(LoginThrottle.addressUnit("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64")
        #expect(LoginThrottle.addressUnit("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64")
        #expect(LoginThrottle.addressUnit("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(LoginThrottle.addressUnit("192.0.2.1") == "192.0.2.1")
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
