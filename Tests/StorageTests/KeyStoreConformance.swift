import Foundation
import IdP
import Testing

@Suite("Storage conformance: signing keys, leases, named secrets")
struct KeyStoreConformance {
    @Test(arguments: Backends.all)
    func insertedKeysReadBackInActivationOrder(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.signingKeys().isEmpty)
            let next = Fixture.signingKey(kid: "next", activatesAt: Fixture.t0 + 86400)
            let current = Fixture.signingKey(kid: "current", activatesAt: Fixture.t0)
            let retired = Fixture.signingKey(kid: "retired", activatesAt: Fixture.t0 - 86400, retiresAt: Fixture.t0,
                                             expiresAt: Fixture.t0 + 360)
            for k in [next, current, retired] { try await store.insertSigningKey(k) }
            #expect(try await store.signingKeys() == [retired, current, next])
        }
    }

    @Test(arguments: Backends.all)
    func insertingAnExistingKidIsAConflict(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let k = Fixture.signingKey(kid: "k1", activatesAt: Fixture.t0)
            try await store.insertSigningKey(k)
            var other = Fixture.signingKey(kid: "k1", activatesAt: Fixture.t0 + 5)
            other.algorithm = .rs256
            let error = await #expect(throws: StorageError.self) { try await store.insertSigningKey(other) }
            #expect(error?.isConflict == true)
            #expect(try await store.signingKeys() == [k])
        }
    }

    @Test(arguments: Backends.all)
    func updateReplacesTimestampsAndSealedKey(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let k = Fixture.signingKey(kid: "k1", activatesAt: Fixture.t0 + 3600)
            try await store.insertSigningKey(k)
            var changed = k
            changed.sealedPrivateKey = "aesgcm:v1:abcd:BBBB"
            changed.activatesAt = Fixture.t0
            changed.retiresAt = Fixture.t0 + 100
            changed.expiresAt = Fixture.t0 + 460
            try await store.updateSigningKey(changed)
            #expect(try await store.signingKeys() == [changed])
        }
    }

    @Test(arguments: Backends.all)
    func updatingAnUnknownKeyIsNotFound(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let error = await #expect(throws: StorageError.self) {
                try await store.updateSigningKey(Fixture.signingKey(kid: "ghost", activatesAt: Fixture.t0))
            }
            #expect(error?.isNotFound == true)
            #expect(try await store.signingKeys().isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func deleteRemovesOnlyThatKey(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let a = Fixture.signingKey(kid: "a", activatesAt: Fixture.t0)
            let b = Fixture.signingKey(kid: "b", activatesAt: Fixture.t0 + 1)
            try await store.insertSigningKey(a)
            try await store.insertSigningKey(b)
            try await store.deleteSigningKey(kid: "a")
            #expect(try await store.signingKeys() == [b])
            try await store.deleteSigningKey(kid: "a")  // deleting nothing is fine
        }
    }

    @Test(arguments: Backends.all)
    func aLeaseHasOneHolderUntilItExpires(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            #expect(try await store.acquireLease(name: "signing-keys", holder: "A", now: t, until: t + 60))
            #expect(try await store.acquireLease(name: "signing-keys", holder: "B", now: t + 1, until: t + 61) == false)
            #expect(try await store.acquireLease(name: "signing-keys", holder: "B", now: t + 59, until: t + 119) == false)
            // Another lease name is independent.
            #expect(try await store.acquireLease(name: "gc", holder: "B", now: t + 1, until: t + 61))
            // Once expired, B takes it; then A is out.
            #expect(try await store.acquireLease(name: "signing-keys", holder: "B", now: t + 60, until: t + 120))
            #expect(try await store.acquireLease(name: "signing-keys", holder: "A", now: t + 61, until: t + 121) == false)
        }
    }

    @Test(arguments: Backends.all)
    func theHolderCanRenewItsLease(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let t = Fixture.t0
            #expect(try await store.acquireLease(name: "signing-keys", holder: "A", now: t, until: t + 60))
            #expect(try await store.acquireLease(name: "signing-keys", holder: "A", now: t + 30, until: t + 90))
            // The renewal moved the end: at the old end B still cannot take it.
            #expect(try await store.acquireLease(name: "signing-keys", holder: "B", now: t + 60, until: t + 120) == false)
            #expect(try await store.acquireLease(name: "signing-keys", holder: "B", now: t + 90, until: t + 150))
        }
    }

    @Test(arguments: Backends.all)
    func theFirstProposedSecretWins(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.namedSecret("refresh-successor", proposed: "first") == "first")
            #expect(try await store.namedSecret("refresh-successor", proposed: "second") == "first")
            #expect(try await store.namedSecret("csrf", proposed: "other") == "other", "names are independent")
        }
    }

    @Test(arguments: Backends.all)
    func concurrentSecretProposalsAllGetTheSameValue(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let proposals = (0..<30).map { "secret-\($0)" }
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for p in proposals { group.addTask { try await store.namedSecret("shared", proposed: p) } }
                var all: [String] = []
                for try await a in group { all.append(a) }
                return all
            }
            #expect(answers.count == 30)
            #expect(Set(answers).count == 1)
            #expect(proposals.contains(answers[0]))
            #expect(try await store.namedSecret("shared", proposed: "late") == answers[0])
        }
    }
}
