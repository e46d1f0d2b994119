import Foundation
import IdP
import Testing

@Suite("Token endpoint: refresh tokens")
struct RefreshTests {
    @Test func refreshRotatesTheTokenAndKeepsTheAuthTime() async throws {
        try await Harness.with { h async throws in
            let authTime = h.clock.now()
            let first = try await h.signIn()
            h.clock.advance(300)
            let second = try await h.refresh(first.refreshToken)

            #expect(second.refreshToken != first.refreshToken)
            #expect(second.refreshToken.utf8.count == 43)
            #expect(second.familyID == first.familyID)
            let id = try await h.claims(second.idToken)
            #expect(id["auth_time"] as? Int == Int(authTime.timeIntervalSince1970), "auth_time is the login, not the refresh")
            #expect(id["iat"] as? Int == Int(h.clock.now().timeIntervalSince1970))
            #expect(try #require(id["exp"] as? Int) - (try #require(id["iat"] as? Int)) == 60)
            #expect(id["at_hash"] as? String == TokenMinter.atHash(second.accessToken))
            #expect(id["sub"] as? String == h.alice.id)
            #expect(id["aud"] as? String == Harness.cliID)
            #expect(id["nonce"] == nil)

            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(first.refreshToken)) == false)
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(second.refreshToken)))
            #expect(try await h.store.family(id: first.familyID)?.lastUsedAt == h.clock.now())

            h.clock.advance(300)
            let third = try await h.refresh(second.refreshToken)
            #expect(Set([first.refreshToken, second.refreshToken, third.refreshToken]).count == 3)
        }
    }

    @Test func aReplayOutsideTheGraceWindowRevokesTheWholeFamily() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let second = try await h.refresh(first.refreshToken)
            h.clock.advance(6)  // grace window is 5 s

            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
            let family = try #require(try await h.store.family(id: first.familyID))
            #expect(family.revokedAt == h.clock.now())
            // The successor the legitimate holder got is dead too.
            let s = await #expect(throws: OAuthError.self) { _ = try await h.refresh(second.refreshToken) }
            #expect(s?.code == "invalid_grant")
            let info = await #expect(throws: OAuthError.self) { _ = try await h.provider.userinfo(accessToken: second.accessToken) }
            #expect(info?.code == "invalid_token")

            let replays = try await h.auditEvents(type: "token.replay")
            #expect(replays.count == 1)
            #expect(replays.first?.details["family"] == first.familyID)
            #expect(replays.first?.subject == h.alice.id)
            #expect(replays.first?.success == false)
        }
    }

    /// The successor's tokens are signed while the rotation is written: when the rotation then loses
    /// (another replica consumed the token after this one looked it up), none of them is handed out.
    @Test func tokensSignedDuringALostRotationAreNeverHandedOut() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            // Issued by a refresh: the provider remembers it (no lookup next time).
            let second = try await h.refresh(first.refreshToken)
            h.clock.advance(1)
            // Consumed behind the provider's back (another replica): the provider still remembers it unused,
            // so only the rotation itself finds out.
            let other = RefreshToken(hash: Secrets.sha256Hex(String(repeating: "B", count: 43)), familyID: first.familyID,
                                     clientID: Harness.cliID, createdAt: h.clock.now(), idleExpiresAt: h.clock.now() + 900)
            #expect(try await h.store.rotateRefreshToken(hash: Secrets.sha256Hex(second.refreshToken), now: h.clock.now(),
                                                         successor: other) == .rotated)
            h.clock.advance(10)  // past the grace window: a replay
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(second.refreshToken) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil, "the family ends, as on any replay")
            #expect(try await h.auditEvents(type: "token.refresh").allSatisfy { $0.details["grace"] == nil })
        }
    }

    /// Signing fails after the rotation was handed to storage (no signing key): the answer is an OAuth
    /// `server_error` (the provider waits for the rotation before answering), the rotation stands, and
    /// the client's retry inside the grace window gets the successor that rotation stored — no replay,
    /// the family lives on.
    @Test func aSigningFailureAfterTheRotationBeganAnswersOnceItIsSettledAndARetryGetsItsSuccessor() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            h.clock.advance(1)
            for key in try await h.store.signingKeys() { try await h.store.deleteSigningKey(kid: key.kid) }
            try await h.keys.reload()   // no key to sign with: minting fails after the rotation began

            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "server_error", "a clear OAuth error, not a crash or a hang")
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(first.refreshToken)) == false,
                    "the rotation committed: the token is consumed")

            try await h.keys.maintain()   // a key again
            h.clock.advance(2)            // inside the 5 s grace window
            let retry = try await h.refresh(first.refreshToken)
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(retry.refreshToken)),
                    "the successor the failed refresh stored, handed out now")
            #expect(try await h.claims(retry.idToken)["sub"] as? String == h.alice.id)
            #expect(try await h.store.family(id: first.familyID)?.revokedAt == nil)
            #expect(try await h.auditEvents(type: "token.replay").isEmpty)
            #expect(try await h.auditEvents(type: "token.refresh").contains { $0.details["grace"] == "true" })
        }
    }

    @Test func aReplayWithinTheGraceWindowGetsTheSameSuccessor() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let second = try await h.refresh(first.refreshToken)
            h.clock.advance(2)
            let again = try await h.refresh(first.refreshToken)
            #expect(again.refreshToken == second.refreshToken)
            h.clock.advance(3)  // exactly at the end of the window
            let onceMore = try await h.refresh(first.refreshToken)
            #expect(onceMore.refreshToken == second.refreshToken)
            // The minted id_token is fresh and valid.
            #expect(try await h.claims(again.idToken)["sub"] as? String == h.alice.id)

            // The chain stays single: the successor rotates once, to a new token.
            let third = try await h.refresh(second.refreshToken)
            #expect(third.refreshToken != second.refreshToken)
            #expect(try await h.store.family(id: first.familyID)?.revokedAt == nil)
            #expect(try await h.auditEvents(type: "token.replay").isEmpty)
        }
    }

    @Test func aGraceReplayAfterTheSuccessorWasUsedIsAReplay() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let second = try await h.refresh(first.refreshToken)
            _ = try await h.refresh(second.refreshToken)
            h.clock.advance(1)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil)
        }
    }

    @Test func parallelRefreshesOfOneTokenAllGetTheSameSuccessor() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let results = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<12 {
                    group.addTask { try await h.refresh(first.refreshToken).refreshToken }
                }
                var all: [String] = []
                for try await r in group { all.append(r) }
                return all
            }
            #expect(results.count == 12)
            #expect(Set(results).count == 1, "never a second successor")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt == nil)
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(results[0])))
        }
    }

    @Test func aTokenStillWorksJustBeforeTheIdleTimeout() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            h.clock.advance(15 * 60 - 1)
            _ = try await h.refresh(first.refreshToken)
        }
    }

    @Test func aTokenDiesAfterFifteenMinutesIdle() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            h.clock.advance(15 * 60 + 1)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
        }
    }

    @Test func activityKeepsAFamilyAliveOnlyUntilItsAbsoluteLifetime() async throws {
        try await Harness.with { h async throws in
            let start = h.clock.now()
            var tokens = try await h.signIn()
            let step: TimeInterval = 14 * 60
            var refreshes = 0
            while h.clock.now() + step < start + 12 * 3600 {
                h.clock.advance(step)
                tokens = try await h.refresh(tokens.refreshToken)
                refreshes += 1
            }
            #expect(refreshes > 45)
            h.clock.set(start + 12 * 3600)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(tokens.refreshToken) }
            #expect(e?.code == "invalid_grant")
        }
    }

    @Test func aRefreshByAnotherClientIsRefusedWithoutConsumingTheToken() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn(.cli)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken, as: .web) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(first.refreshToken)))
            _ = try await h.refresh(first.refreshToken, as: .cli)
        }
    }

    @Test func aClientAuthenticationFailureConsumesNothing() async throws {
        try await Harness.with { h async throws in
            let web = try await h.signIn(.web)
            let cli = try await h.signIn(.cli)
            let refreshWeb = FormParameters([("grant_type", "refresh_token"), ("refresh_token", web.refreshToken)])
            let refreshCli = FormParameters([("grant_type", "refresh_token"), ("refresh_token", cli.refreshToken)])
            let attempts: [(FormParameters, String?, String)] = [
                (refreshWeb, Harness.basic(Harness.webID, "wrong-secret"), "invalid_client"),
                (refreshWeb, Harness.basic(Harness.webID, ""), "invalid_client"),
                (refreshWeb, nil, "invalid_client"),  // no credentials at all
                (FormParameters(refreshWeb.pairs + [("client_id", Harness.webID), ("client_secret", "wrong")]), nil, "invalid_client"),
                (FormParameters(refreshWeb.pairs + [("client_secret", Harness.webSecret)]), Harness.basic(Harness.webID, Harness.webSecret),
                 "invalid_request"),  // two methods at once
                (refreshCli, Harness.basic(Harness.cliID, "a-secret"), "invalid_client"),  // a public client has no secret
                (FormParameters(refreshCli.pairs + [("client_id", Harness.cliID), ("client_secret", "x")]), nil, "invalid_client"),
                (refreshCli, "Basic !!!not-base64", "invalid_client"),
                (FormParameters(refreshCli.pairs + [("client_id", "nobody")]), nil, "invalid_client"),
            ]
            for (params, header, code) in attempts {
                let e = await #expect(throws: OAuthError.self) {
                    _ = try await h.provider.token(params, authorizationHeader: header, remoteAddress: Harness.remote)
                }
                #expect(e?.code == code)
            }
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(web.refreshToken)))
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(cli.refreshToken)))
            _ = try await h.refresh(web.refreshToken, as: .web)
            // Stock kubectl sends Basic with an empty secret for the public client: that is "none".
            _ = try await h.provider.token(refreshCli, authorizationHeader: Harness.basic(Harness.cliID, ""), remoteAddress: Harness.remote)
        }
    }

    @Test func disablingTheUserInTheDirectoryEndsTheFamilyAtTheNextRefresh() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            try await h.store.updateUser(id: h.alice.id) { $0.disabled = true }
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil)
            // Re-enabling does not bring the family back.
            try await h.store.updateUser(id: h.alice.id) { $0.disabled = false }
            let again = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(again?.code == "invalid_grant")
        }
    }

    @Test func disablingTheUserThroughAdminEndsTheFamily() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            try await h.users.setDisabled("alice", disabled: true, actor: "admin")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil)
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
            let info = await #expect(throws: OAuthError.self) { _ = try await h.provider.userinfo(accessToken: first.accessToken) }
            #expect(info?.code == "invalid_token")
        }
    }

    @Test func deletingTheUserEndsTheFamily() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            #expect(try await h.store.deleteUser(id: h.alice.id))
            let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(first.refreshToken) }
            #expect(e?.code == "invalid_grant")
            #expect(try await h.store.family(id: first.familyID)?.revokedAt != nil)
        }
    }

    @Test func changedGroupsShowInTheNextIdToken() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            #expect(try await h.claims(first.idToken)["groups"] as? [String] == ["dev", "ops"])
            try await h.store.updateUser(id: h.alice.id) { $0.groups = ["dev", "cluster-admins"] }
            h.clock.advance(30)
            let second = try await h.refresh(first.refreshToken)
            #expect(try await h.claims(second.idToken)["groups"] as? [String] == ["dev", "cluster-admins"])
        }
    }

    @Test func mangledRefreshTokensAreRefusedAndTheRealOneStillWorks() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let t = first.refreshToken
            let flipped = String(t.map { $0.isUppercase ? Character($0.lowercased()) : Character($0.uppercased()) })
            let variants = [
                String(t.dropLast()),                 // truncated
                t + "=",                              // padded
                t + "A",                              // extended
                " " + t,                              // leading space
                t.uppercased(),                       // re-cased
                t.lowercased(),
                flipped,
                Base64URL.encode(Array(t.utf8)),      // re-encoded
                t.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"),
            ].filter { $0 != t }
            #expect(variants.count >= 7)
            for v in variants {
                let e = await #expect(throws: OAuthError.self) { _ = try await h.refresh(v) }
                #expect(e?.code == "invalid_grant")
            }
            #expect(try await h.store.family(id: first.familyID)?.revokedAt == nil)
            _ = try await h.refresh(t)
        }
    }

    @Test func repeatedRefreshParametersAreAnInvalidRequest() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn()
            let e = await #expect(throws: OAuthError.self) {
                _ = try await h.refresh(first.refreshToken, extra: [("refresh_token", first.refreshToken)])
            }
            #expect(e?.code == "invalid_request")
            let s = await #expect(throws: OAuthError.self) {
                _ = try await h.refresh(first.refreshToken, extra: [("scope", "openid"), ("scope", "openid")])
            }
            #expect(s?.code == "invalid_request")
            #expect(try await h.store.refreshTokenIsUnused(hash: Secrets.sha256Hex(first.refreshToken)))
            _ = try await h.refresh(first.refreshToken, extra: [("unknown", "ignored")])
        }
    }

    @Test func aRefreshMayNarrowButNotWidenTheScope() async throws {
        try await Harness.with { h async throws in
            let first = try await h.signIn(scope: "openid groups offline_access")
            let wide = await #expect(throws: OAuthError.self) {
                _ = try await h.refresh(first.refreshToken, extra: [("scope", "openid groups email")])
            }
            #expect(wide?.code == "invalid_scope")
            let narrow = try await h.refresh(first.refreshToken, extra: [("scope", "openid")])
            #expect(narrow.scopes == ["openid"])
            #expect(try await h.claims(narrow.idToken)["groups"] == nil)
        }
    }
}
