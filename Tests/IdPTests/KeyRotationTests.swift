import Foundation
import IdP
import Testing

@Suite("Signing keys: rotation and JWKS")
struct KeyRotationTests {
    static let day: TimeInterval = 86400
    static let policy = KeyPolicy(algorithm: .es256, rotationPeriod: day, publishAhead: 3600, retainAfterRetire: 360)

    @Test func theFirstMaintenanceCreatesASigningKeyAndPublishesTheNextOne() async throws {
        try await Harness.with(keyPolicy: Self.policy) { h async throws in
            let status = await h.keys.status()
            #expect(status.map(\.state) == ["signing", "next"])
            let signing = try #require(status.first), next = try #require(status.last)
            #expect(signing.activatesAt == h.clock.now())
            #expect(next.activatesAt == h.clock.now() + Self.day)
            #expect(try h.keys.signingKey().kid == signing.kid)
            #expect(Set(try await h.publishedKids()) == [signing.kid, next.kid])
            #expect(Set(h.keys.verificationKeys().keys) == [signing.kid, next.kid])
            #expect(try await h.store.signingKeys().count == 2)
            // Maintenance again changes nothing.
            try await h.keys.maintain()
            #expect(try await h.store.signingKeys().count == 2)
        }
    }

    @Test func theNextKeySignsAfterTheRotationPeriodAndThePreviousStaysUntilTokensExpire() async throws {
        try await Harness.with(keyPolicy: Self.policy) { h async throws in
            let status = await h.keys.status()
            let old = status[0].kid, next = status[1].kid
            let before = try await h.signIn()
            #expect(try Harness.header(before.idToken)["kid"] as? String == old)

            h.clock.advance(Self.day + 1)
            // Every replica switches by time alone, before anyone runs maintenance.
            #expect(try h.keys.signingKey().kid == next)
            try await h.keys.maintain()
            let after = try await h.signIn()
            #expect(try Harness.header(after.idToken)["kid"] as? String == next)
            let kids = try await h.publishedKids()
            #expect(kids.contains(old) && kids.contains(next))
            #expect(kids.count == 3, "a new next key is published")
            let states = await h.keys.status().map(\.state)
            #expect(states == ["retired", "signing", "next"])

            // The previous key stays published until everything it signed has expired …
            h.clock.set(Date(timeIntervalSince1970: 1_800_000_000) + Self.day + 359)
            #expect(try await h.publishedKids().contains(old))
            // … and is gone after that, from JWKS and from verification.
            h.clock.advance(1)
            #expect(try await h.publishedKids().contains(old) == false)
            #expect(h.keys.verificationKeys()[old] == nil)
            try await h.keys.maintain()
            #expect(try await h.store.signingKeys().map(\.kid).contains(old) == false)
        }
    }

    @Test func rotateNowPromotesThePublishedNextKey() async throws {
        try await Harness.with(keyPolicy: Self.policy) { h async throws in
            let status = await h.keys.status()
            let old = status[0].kid, next = status[1].kid
            h.clock.advance(10)
            try await h.keys.rotate(.routine)
            #expect(try h.keys.signingKey().kid == next)
            let after = await h.keys.status()
            #expect(after.first { $0.kid == old }?.state == "retired")
            #expect(after.first { $0.kid == next }?.state == "signing")
            let newNext = try #require(after.first { $0.state == "next" })
            #expect(newNext.kid != old && newNext.kid != next)
            #expect(newNext.activatesAt >= h.clock.now() + 3600, "the new next key is published ahead")
            #expect(Set(try await h.publishedKids()) == [old, next, newNext.kid])
            let tokens = try await h.signIn()
            #expect(try Harness.header(tokens.idToken)["kid"] as? String == next)
        }
    }

    @Test func aSecondReplicaUsesTheSameKeysInsteadOfCreatingItsOwn() async throws {
        try await Harness.with(keyPolicy: Self.policy) { h async throws in
            let replica = KeyManager(store: h.store, sealer: try KeySealer(secret: nil), clock: h.clock, random: SystemRandom(),
                                     policy: Self.policy, logger: Harness.logger)
            try await replica.maintain()
            #expect(try await h.store.signingKeys().count == 2)
            #expect(try replica.signingKey().kid == (try h.keys.signingKey().kid))
            #expect(replica.jwks() == (h.keys.jwks()))
        }
    }

    @Test func privateKeysAreSealedWhenAKeyEncryptionKeyIsConfigured() async throws {
        try await Harness.with(keyPolicy: Self.policy, kek: Data("operator supplied key material".utf8)) { h async throws in
            let records = try await h.store.signingKeys()
            #expect(records.count == 2)
            for r in records {
                #expect(r.sealedPrivateKey.hasPrefix("aesgcm:v2:"))
                #expect(KeySealer.isPlain(r.sealedPrivateKey) == false)
            }
            #expect(await h.keys.status().allSatisfy(\.encrypted))
            // Without the key another process cannot load them.
            let blind = KeyManager(store: h.store, sealer: try KeySealer(secret: nil), clock: h.clock, random: SystemRandom(),
                                   policy: Self.policy, logger: Harness.logger)
            await #expect(throws: KeySealError.self) { try await blind.reload() }
        }
    }

    @Test func rs256KeysSignTokensThatVerifyFromTheirJWK() async throws {
        try await Harness.with(algorithm: .rs256) { h async throws in
            let tokens = try await h.signIn()
            let header = try Harness.header(tokens.idToken)
            #expect(header["alg"] as? String == "RS256")
            #expect(try await h.claims(tokens.idToken)["sub"] as? String == h.alice.id)
            #expect(h.keys.publishedAlgorithms() == [.rs256])

            let doc = try #require(try JSONSerialization.jsonObject(with: Data(h.keys.jwks().utf8)) as? [String: Any])
            let jwks = try #require(doc["keys"] as? [[String: Any]])
            let kid = try #require(header["kid"] as? String)
            let jwk = try #require(jwks.first { $0["kid"] as? String == kid })
            #expect(jwk["kty"] as? String == "RSA" && jwk["alg"] as? String == "RS256" && jwk["use"] as? String == "sig")
            let json = String(data: try JSONSerialization.data(withJSONObject: jwk), encoding: .utf8)!
            let key = try VerificationKey(jwkJSON: json)
            _ = try JWS.verify(tokens.idToken, keys: [kid: key])
        }
    }

    @Test func aRoutineRotationNeverSignsWithAKeyPublishedTooRecently() async throws {
        var policy = Self.policy
        policy.minimumPublished = 120
        try await Harness.with(keyPolicy: policy) { h async throws in
            let old = try h.keys.signingKey().kid
            let next = await h.keys.status()[1].kid
            h.clock.advance(10)
            let r = try await h.keys.rotate(.routine)
            #expect(r.kid == next && r.signsAt == h.clock.now() + 110, "published 10 s ago: it waits the other 110 s")
            #expect(try h.keys.signingKey().kid == old, "the current key signs until then")
            // Rotating again changes nothing: still the same key, still the same time.
            let again = try await h.keys.rotate(.routine)
            #expect(again.kid == next && again.signsAt == r.signsAt)
            h.clock.advance(110)
            try await h.keys.maintain()
            #expect(try h.keys.signingKey().kid == next)
            let status = await h.keys.status()
            let newNext = try #require(status.first { $0.state == "next" })
            // The next rotation right away: the new next key was only just published.
            let third = try await h.keys.rotate(.routine)
            #expect(third.kid == newNext.kid && third.signsAt > h.clock.now())
            #expect(try h.keys.signingKey().kid == next)
        }
    }

    @Test func anEmergencyRotationSignsWithANewKeyAndWithdrawsTheOthers() async throws {
        try await Harness.with(keyPolicy: Self.policy) { h async throws in
            let before = Set(await h.keys.status().map(\.kid))
            h.clock.advance(5)
            let r = try await h.keys.rotate(.emergency)
            #expect(!before.contains(r.kid) && r.signsAt == h.clock.now())
            #expect(Set(r.withdrawn) == before)
            #expect(try h.keys.signingKey().kid == r.kid)
            let published = Set(try await h.publishedKids())
            #expect(published.isDisjoint(with: before), "withdrawn keys leave JWKS at once")
            #expect(published.contains(r.kid) && published.count == 2, "the new key and a new next key")
        }
    }
}
