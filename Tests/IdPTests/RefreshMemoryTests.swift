import Foundation
import IdP
import Testing

/// The successors a replica remembers (`IssuedRefreshTokens`): their next refresh skips the read,
/// and nothing the memory holds may outlive a change made elsewhere.
@Suite("Token endpoint: refresh from a replica's memory")
struct RefreshMemoryTests {
    @Test func aFamilyEndedElsewhereIsRefusedWithTheSameWordsAsARead() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let second = try await h.refresh(first.refreshToken)   // `second` is now in this replica's memory
            // Another replica (or the CLI) ends the family: nothing tells this one.
            #expect(try await h.store.revokeFamily(id: first.familyID, now: h.clock.now(), reason: "ended by an administrator"))
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(second.refreshToken) }
            #expect(e?.code == "invalid_grant")
            #expect(e?.description.contains("this session has been ended (ended by an administrator)") == true, "\(String(describing: e))")
            // Nothing was issued: the successor of `second` does not exist, and `second` was not consumed.
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(second.refreshToken)))
            let refreshes = try await h.auditEvents(type: "token.refresh").filter { $0.success }
            #expect(refreshes.count == 1, "only the first refresh succeeded")
        }
    }

    @Test func aSuccessorUsedElsewhereIsAReplayHere() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let second = try await h.refresh(first.refreshToken)
            // Another replica rotates `second` (as the shared database would show it), outside any grace window.
            let elsewhere = RefreshToken(hash: Secrets.sha256Hex("minted-by-another-replica-0123456789abcdefg"), familyID: second.familyID,
                                         clientID: Harness.cliID, createdAt: h.clock.now(), idleExpiresAt: h.clock.now() + 900)
            #expect(try await h.store.rotateRefreshToken(hash: Secrets.sha256Hex(second.refreshToken), now: h.clock.now(),
                                                         successor: elsewhere, audit: nil) == .rotated)
            h.clock.advance(6)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(second.refreshToken) }
            #expect(e?.code == "invalid_grant")
            // Theft detection still fires from memory: the whole family is dead.
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil)
            #expect(try await h.auditEvents(type: "token.replay").count == 1)
        }
    }

    @Test func aChainKeepsRotatingAndEachTokenWorksOnce() async throws {
        try await Harness.with { h async throws in
            var token = try await h.signIn().refreshToken
            var seen: Set<String> = [token]
            for _ in 0..<20 {
                h.clock.advance(30)
                let next = try await h.refresh(token)
                #expect(seen.insert(next.refreshToken).inserted)
                #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(token)) == false)
                token = next.refreshToken
            }
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(token)))
        }
    }
}
