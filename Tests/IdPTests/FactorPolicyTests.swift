import Crypto
import Foundation
import Testing
@testable import IdP

/// amr composition, who the policy asks, the API server's CEL rule, and the pieces of codes.
@Suite("Second factors: amr, policy, codes")
struct FactorPolicyTests {
    @Test func amrNamesEachFactorAndMFAOnlyForTwo() {
        #expect(AMR.primary(method: "password", kerberosSatisfies: false) == ["pwd"])
        #expect(AMR.primary(method: "ldap", kerberosSatisfies: true) == ["pwd"])
        #expect(AMR.primary(method: "kerberos", kerberosSatisfies: false) == ["kerberos"])
        #expect(AMR.primary(method: "kerberos", kerberosSatisfies: true) == ["kerberos", "mfa"])
        #expect(AMR.adding(["otp"], to: ["pwd"]) == ["pwd", "otp", "mfa"])
        #expect(AMR.adding(AMR.passkey(backupEligible: false), to: ["pwd"]) == ["pwd", "hwk", "user", "mfa"])
        #expect(AMR.adding(AMR.passkey(backupEligible: true), to: ["kerberos"]) == ["kerberos", "swk", "user", "mfa"])
        #expect(AMR.adding(["otp"], to: ["pwd", "otp", "mfa"]) == ["pwd", "otp", "mfa"], "a step-up adds nothing twice")
        #expect(AMR.adding(["otp"], to: []) == ["otp"], "a code alone is one factor")
        #expect(AMR.decode(AMR.encode(["pwd", "otp", "mfa"])) == ["pwd", "otp", "mfa"] && AMR.decode("") == [])
    }

    @Test func thePolicyAsksWhomItNames() {
        let sre = Identity(subject: "s", username: "a", displayName: "", email: "", emailVerified: false, groups: ["sre", "dev"], isAdmin: false)
        let dev = Identity(subject: "d", username: "b", displayName: "", email: "", emailVerified: false, groups: ["dev"], isAdmin: false)
        #expect(!MFAPolicy().applies(to: sre, isAdmin: true))
        #expect(MFAPolicy(require: .everyone).applies(to: dev, isAdmin: false))
        #expect(MFAPolicy(require: .groups, groups: ["sre"]).applies(to: sre, isAdmin: false))
        #expect(!MFAPolicy(require: .groups, groups: ["sre"]).applies(to: dev, isAdmin: true))
        #expect(MFAPolicy(require: .admins).applies(to: dev, isAdmin: true) && !MFAPolicy(require: .admins).applies(to: sre, isAdmin: false))
        let acr = MFAPolicy(acrMultiFactor: "urn:x:mfa", acrSingleFactor: "")
        #expect(acr.acr(for: ["pwd", "otp", "mfa"]) == "urn:x:mfa" && acr.acr(for: ["pwd"]) == nil)
    }

    @Test func theAPIServerRuleFollowsThePolicy() {
        var setup = APIServerSetup(issuer: "https://portal.example.org", clientIDs: ["kubernetes"], usernameClaim: "preferred_username",
                                   usernamePrefix: "oidc:", groupsClaim: "groups", groupsPrefix: "oidc:", signingAlgorithms: [.rs256], issuerCAPEM: nil)
        #expect(setup.mfaRule == nil && !setup.authenticationConfiguration.contains("claimValidationRules"))
        #expect(setup.optionalMFARule?.contains("has(claims.amr) && 'mfa' in claims.amr") == true)
        setup.mfaRequirement = .everyone
        #expect(setup.mfaRule?.expression == "has(claims.amr) && 'mfa' in claims.amr" && setup.optionalMFARule == nil)
        #expect(setup.authenticationConfiguration.contains("  claimValidationRules:\n  - expression: \"has(claims.amr) && 'mfa' in claims.amr\"\n"))
        setup.mfaRequirement = .groups
        setup.mfaGroups = ["sre", "o'brien"]
        #expect(setup.mfaRule?.expression
                == "!(has(claims.groups) && claims.groups.exists(g, g in ['sre', 'o\\'brien'])) || (has(claims.amr) && 'mfa' in claims.amr)")
        setup.mfaRequirement = .admins
        #expect(setup.mfaRule == nil && setup.optionalMFARule != nil, "administrators are not a claim")
    }

    @Test func base32AndRecoveryCodesReadAsWritten() {
        #expect(Base32.encode(Array("foobar".utf8)) == "MZXW6YTBOI")  // RFC 4648 §10
        #expect(Base32.encode(Array("12345678901234567890".utf8)) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(SecondFactors.normalizedRecoveryCode("ABCD-efgh 2345-6777") == "abcdefgh23456777")
        #expect(SecondFactors.normalizedRecoveryCode("abcd-efgh-2345-677") == nil, "too short")
        #expect(SecondFactors.normalizedRecoveryCode("abcd-efgh-2345-6781") == nil, "1 and 8 are not base32")
        #expect(SecondFactors.recoveryHash("abcdefgh23456777", userID: "u1") != SecondFactors.recoveryHash("abcdefgh23456777", userID: "u2"))
        #expect(SecondFactors.cleanName("  phone\u{7}  ", fallback: "x") == "phone" && SecondFactors.cleanName("   ", fallback: "x") == "x")
    }
}
