import Foundation
import IdP
import Testing

@Suite("Refresh families remember where they came from")
struct FamilyOriginTests {
    static let kubectl = "kubectl/v1.32.0 (linux/amd64) kubernetes/abc123"

    @Test func aCodeRedemptionRecordsTheAddressAndUserAgent() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            let form = FormParameters([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Harness.cliRedirect),
                                       ("code_verifier", verifier), ("client_id", Harness.cliID)])
            let tokens = try await h.provider.token(form, authorizationHeader: nil, remoteAddress: "203.0.113.9", userAgent: Self.kubectl)
            let family = try #require(try await h.store.family(id: tokens.familyID))
            #expect(family.address == "203.0.113.9")
            #expect(family.userAgent == Self.kubectl)
            #expect(DeviceName.describe(userAgent: family.userAgent) == "kubectl 1.32 on linux/amd64")

            // Rotation keeps the origin: it is the login's, not the latest request's.
            let next = try await h.provider.token(FormParameters([("grant_type", "refresh_token"), ("refresh_token", tokens.refreshToken),
                                                                  ("client_id", Harness.cliID)]),
                                                  authorizationHeader: nil, remoteAddress: "198.51.100.1", userAgent: "curl/8.5.0")
            #expect(next.familyID == family.id)
            #expect(try await h.store.family(id: family.id)?.userAgent == Self.kubectl)
            #expect(try await h.store.family(id: family.id)?.address == "203.0.113.9")
        }
    }

    @Test func aUserAgentIsStoredWithoutControlCharactersAndAtMost200Characters() async throws {
        try await Harness.with { h async throws in
            let verifier = Harness.newVerifier()
            let code = try await h.authorize(h.authorizationParameters(verifier: verifier))
            let hostile = "evil\u{0}agent\r\n\u{1b}[31m" + String(repeating: "x", count: 500)
            let form = FormParameters([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Harness.cliRedirect),
                                       ("code_verifier", verifier), ("client_id", Harness.cliID)])
            let tokens = try await h.provider.token(form, authorizationHeader: nil, remoteAddress: Harness.remote, userAgent: hostile)
            let stored = try #require(try await h.store.family(id: tokens.familyID)).userAgent
            #expect(stored.count == 200)
            #expect(stored.hasPrefix("evilagent[31mxxx"))
            #expect(!Identifiers.hasControlCharacters(stored))
        }
    }

    @Test func withoutAUserAgentTheFamilyKnowsOnlyTheAddress() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let family = try #require(try await h.store.family(id: tokens.familyID))
            #expect(family.address == Harness.remote)
            #expect(family.userAgent == "")
            #expect(DeviceName.describe(userAgent: family.userAgent) == "Unknown device")
        }
    }

    @Test func tokensIssuedForADeviceRecordTheBrowser() async throws {
        try await Harness.with { h async throws in
            let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
            let session = LoginSession(hash: "h", sid: "s-1", userID: h.alice.id, authTime: h.clock.now(), authMethod: "password",
                                       createdAt: h.clock.now(), expiresAt: h.clock.now() + 3600)
            let tokens = try await h.provider.issueForDevice(identity: Identity(user: h.alice), clientID: Harness.cliID, session: session,
                                                             remoteAddress: "192.0.2.77", purpose: "kubeconfig", userAgent: chrome)
            let family = try #require(try await h.store.family(id: tokens.familyID))
            #expect(family.address == "192.0.2.77")
            #expect(family.userAgent == chrome)
            #expect(DeviceName.describe(userAgent: family.userAgent) == "Chrome on Linux")
        }
    }
}
