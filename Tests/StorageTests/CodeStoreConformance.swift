import Foundation
import IdP
import Testing

@Suite("Storage conformance: authorization codes")
struct CodeStoreConformance {
    @Test(arguments: Backends.all)
    func createdCodeReadsBackUnused(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let code = Fixture.code()
            try await store.createCode(code)
            let stored = try #require(try await store.code(hash: code.hash))
            #expect(stored == code)
            #expect(stored.usedAt == nil && stored.familyID == nil)
            #expect(try await store.code(hash: Fixture.hash()) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func codeWithoutNonceOrChallengeRoundTrips(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            var code = Fixture.code()
            code.nonce = nil
            code.codeChallenge = nil
            try await store.createCode(code)
            #expect(try await store.code(hash: code.hash) == code)
        }
    }

    @Test(arguments: Backends.all)
    func redeemingACodeMarksItUsedAndStoresTheFamilyWithItsFirstToken(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let code = Fixture.code()
            try await store.createCode(code)
            let now = Fixture.t0 + 5
            let family = Fixture.family(at: now)
            let first = Fixture.token(familyID: family.id, at: now)
            #expect(try await store.redeemCode(hash: code.hash, now: now, family: family, firstToken: first) == .redeemed)

            let used = try #require(try await store.code(hash: code.hash))
            #expect(used.usedAt == now)
            #expect(used.familyID == family.id)
            #expect(try await store.family(id: family.id) == family)
            let (token, tokenFamily) = try #require(try await store.refreshToken(hash: first.hash))
            #expect(token == first)
            #expect(tokenFamily == family)
            #expect(try await store.refreshTokenIsUnused(hash: first.hash))
        }
    }

    @Test(arguments: Backends.all)
    func aSecondRedemptionIsAlreadyUsedAndNamesTheFirstFamily(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let code = Fixture.code()
            try await store.createCode(code)
            let family = Fixture.family()
            let first = Fixture.token(familyID: family.id)
            #expect(try await store.redeemCode(hash: code.hash, now: Fixture.t0, family: family, firstToken: first) == .redeemed)

            let intruder = Fixture.family()
            let intruderToken = Fixture.token(familyID: intruder.id)
            let again = try await store.redeemCode(hash: code.hash, now: Fixture.t0 + 1, family: intruder, firstToken: intruderToken)
            #expect(again == .alreadyUsed(familyID: family.id))
            // Nothing of the second attempt was written, and the first redemption is untouched.
            #expect(try await store.family(id: intruder.id) == nil)
            #expect(try await store.refreshToken(hash: intruderToken.hash) == nil)
            #expect(try await store.code(hash: code.hash)?.usedAt == Fixture.t0)
            #expect(try await store.code(hash: code.hash)?.familyID == family.id)
        }
    }

    @Test(arguments: Backends.all)
    func redeemingAnUnknownCodeIsNotFoundAndWritesNothing(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let family = Fixture.family()
            let first = Fixture.token(familyID: family.id)
            #expect(try await store.redeemCode(hash: Fixture.hash(), now: Fixture.t0, family: family, firstToken: first) == .notFound)
            #expect(try await store.family(id: family.id) == nil)
            #expect(try await store.refreshToken(hash: first.hash) == nil)
        }
    }

    @Test(arguments: Backends.all)
    func parallelRedemptionsOfOneCodeHaveExactlyOneWinner(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let code = Fixture.code(userID: "racer")
            try await store.createCode(code)
            let attempts = (0..<50).map { _ in
                let family = Fixture.family(userID: "racer")
                return (family, Fixture.token(familyID: family.id))
            }
            let outcomes = try await withThrowingTaskGroup(of: (String, CodeRedemption).self) { group in
                for (family, token) in attempts {
                    group.addTask {
                        (family.id, try await store.redeemCode(hash: code.hash, now: Fixture.t0, family: family, firstToken: token))
                    }
                }
                var all: [(String, CodeRedemption)] = []
                for try await o in group { all.append(o) }
                return all
            }
            let winners = outcomes.filter { $0.1 == .redeemed }
            #expect(winners.count == 1)
            let winner = try #require(winners.first).0
            // Every loser learns the winner's family.
            for (_, outcome) in outcomes where outcome != .redeemed {
                #expect(outcome == .alreadyUsed(familyID: winner))
            }
            #expect(try await store.code(hash: code.hash)?.familyID == winner)
            // Exactly one family row exists: the winner's.
            let families = try await store.activeFamilies(userID: "racer", now: Fixture.t0)
            #expect(families.map(\.id) == [winner])
            for (family, token) in attempts where family.id != winner {
                #expect(try await store.family(id: family.id) == nil)
                #expect(try await store.refreshToken(hash: token.hash) == nil)
            }
        }
    }
}
