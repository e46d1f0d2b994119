import Foundation
import IdP
import Testing

/// Second factors on every backend: each TOTP step and recovery code counts once, a passkey counter moves
/// by compare-and-set, challenges are single use and bound to a browser, amr travels with logins.
@Suite("Storage conformance: second factors")
struct FactorStoreConformance {
    static func totp(_ id: String, user: String = "user-1", confirmed: Bool = true) -> Factor {
        Factor(id: id, userID: user, kind: .totp, name: "phone", sealedSecret: "plain:c2VjcmV0", confirmed: confirmed, createdAt: Fixture.t0)
    }

    static func passkey(_ id: String, credential: String, user: String = "user-1", count: Int = 5) -> Factor {
        Factor(id: id, userID: user, kind: .passkey, name: "key", credentialID: credential, publicKey: "pQECAyYgASFYIA",
               signCount: count, backupEligible: true, confirmed: true, createdAt: Fixture.t0)
    }

    @Test(arguments: Backends.all)
    func aTOTPStepIsAcceptedOnceEvenInParallel(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            try await store.createFactor(Self.totp("t-new", confirmed: false))
            #expect(try await store.useTOTP(id: "t-new", step: 100, now: t) == false, "an unconfirmed enrollment signs nobody in")
            #expect(try await store.confirmFactor(id: "t-new", userID: "someone-else", name: "x", step: 100, now: t) == false)
            #expect(try await store.confirmFactor(id: "t-new", userID: "user-1", name: "phone", step: 100, now: t))
            #expect(try await store.confirmFactor(id: "t-new", userID: "user-1", name: "phone", step: 101, now: t) == false, "confirmed once")
            #expect(try await store.useTOTP(id: "t-new", step: 100, now: t) == false, "the confirming code's step is used up")
            async let a = store.useTOTP(id: "t-new", step: 101, now: t + 30)
            async let b = store.useTOTP(id: "t-new", step: 101, now: t + 30)
            #expect([try await a, try await b].filter { $0 }.count == 1, "one of two parallel uses of a code")
            #expect(try await store.useTOTP(id: "t-new", step: 100, now: t + 31) == false, "an older step after a newer one")
            let f = try #require(try await store.factor(id: "t-new"))
            #expect(f.confirmed && f.lastStep == 101 && f.lastUsedAt == t + 30 && f.name == "phone")
        }
    }

    @Test(arguments: Backends.all)
    func aPasskeyCounterMovesByCompareAndSet(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createFactor(Self.passkey("p1", credential: "cred-A"))
            await #expect(throws: StorageError.self) { try await store.createFactor(Self.passkey("p1", credential: "cred-B")) }
            #expect(try await store.factor(credentialID: "cred-A")?.id == "p1")
            #expect(try await store.factor(credentialID: "nope") == nil)
            async let a = store.usePasskey(id: "p1", previous: 5, signCount: 6, now: Fixture.t0)
            async let b = store.usePasskey(id: "p1", previous: 5, signCount: 7, now: Fixture.t0)
            #expect([try await a, try await b].filter { $0 }.count == 1, "one of two uses read at the same counter")
            #expect(try await store.usePasskey(id: "p1", previous: 5, signCount: 9, now: Fixture.t0) == false, "a stale read")
            #expect([6, 7].contains(try #require(try await store.factor(id: "p1")).signCount))
        }
    }

    @Test(arguments: Backends.all)
    func recoveryCodesWorkOnceAndANewSetVoidsTheOld(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            try await store.replaceRecoveryCodes(userID: "user-1", hashes: ["h1", "h2", "h3"], now: t)
            #expect(try await store.recoveryCodesLeft(userID: "user-1") == 3)
            #expect(try await store.useRecoveryCode(userID: "user-2", hash: "h1", now: t) == false, "another person's code")
            async let a = store.useRecoveryCode(userID: "user-1", hash: "h1", now: t)
            async let b = store.useRecoveryCode(userID: "user-1", hash: "h1", now: t)
            #expect([try await a, try await b].filter { $0 }.count == 1)
            #expect(try await store.recoveryCodesLeft(userID: "user-1") == 2)
            try await store.replaceRecoveryCodes(userID: "user-1", hashes: ["h4"], now: t + 1)
            #expect(try await store.useRecoveryCode(userID: "user-1", hash: "h2", now: t + 2) == false, "voided")
            #expect(try await store.recoveryCodesLeft(userID: "user-1") == 1)
        }
    }

    @Test(arguments: Backends.all)
    func challengesAreSingleUseBoundToABrowserAndExpire(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            let c = WebAuthnChallenge(hash: "ch1", browserHash: "b1", userID: "user-1", purpose: "factor", expiresAt: t + 300)
            try await store.createChallenge(c)
            #expect(try await store.takeChallenge(hash: "ch1", browserHash: "b2", now: t) == nil, "another browser")
            async let a = store.takeChallenge(hash: "ch1", browserHash: "b1", now: t)
            async let b = store.takeChallenge(hash: "ch1", browserHash: "b1", now: t)
            #expect([try await a, try await b].compactMap { $0 } == [c], "taken once")
            try await store.createChallenge(WebAuthnChallenge(hash: "ch2", browserHash: "b1", userID: "", purpose: "login", expiresAt: t + 300))
            #expect(try await store.takeChallenge(hash: "ch2", browserHash: "b1", now: t + 301) == nil, "expired")
        }
    }

    @Test(arguments: Backends.all)
    func resetRemovesFactorsAndCodesOfOnePersonOnly(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createFactor(Self.totp("a1"))
            try await store.createFactor(Self.totp("a2", confirmed: false))
            try await store.createFactor(Self.passkey("a3", credential: "cred-a3"))
            try await store.createFactor(Self.totp("b1", user: "user-2"))
            try await store.replaceRecoveryCodes(userID: "user-1", hashes: ["r1"], now: Fixture.t0)
            #expect(try await store.renameFactor(id: "b1", userID: "user-1", name: "mine now") == false, "not theirs")
            #expect(try await store.deleteFactor(id: "b1", userID: "user-1") == false, "not theirs")
            #expect(try await store.deleteFactors(userID: "user-1") == 2, "counts the confirmed ones")
            #expect(try await store.factors(userID: "user-1").isEmpty)
            #expect(try await store.recoveryCodesLeft(userID: "user-1") == 0)
            #expect(try await store.factors(userID: "user-2").map(\.id) == ["b1"])
        }
    }

    @Test(arguments: Backends.all)
    func amrTravelsWithSessionsCodesAndFamiliesAndTheGraceStartStays(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            let s = LoginSession(hash: Fixture.hash(), userID: "user-1", authTime: t, authMethod: "password", createdAt: t, expiresAt: t + 3600,
                                 amr: ["pwd"])
            try await store.createSession(s)
            #expect(try await store.session(hash: s.hash)?.amr == ["pwd"])
            #expect(try await store.session(hash: s.hash)?.factorAt == nil)
            try await store.markSessionFactor(hash: s.hash, amr: ["pwd", "otp", "mfa"], at: t + 10)
            let marked = try #require(try await store.session(hash: s.hash))
            #expect(marked.amr == ["pwd", "otp", "mfa"] && marked.factorAt == t + 10)

            var code = Fixture.code(at: t)
            code.grant.amr = ["hwk", "user", "mfa"]
            try await store.createCode(code)
            #expect(try await store.code(hash: code.hash)?.grant.amr == ["hwk", "user", "mfa"])
            var family = Fixture.family(at: t)
            family.grant.amr = ["kerberos", "mfa"]
            #expect(try await store.redeemCode(hash: code.hash, now: t, family: family, firstToken: Fixture.token(familyID: family.id)) == .redeemed)
            #expect(try await store.family(id: family.id)?.grant.amr == ["kerberos", "mfa"])

            #expect(try await store.mfaGraceStart(userID: "user-1", now: t) == t)
            #expect(try await store.mfaGraceStart(userID: "user-1", now: t + 86400) == t, "the first sign-in under the rule counts")
        }
    }
}
