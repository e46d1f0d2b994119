import Foundation
import IdP
import Testing

@Suite("Storage conformance: application credentials and robots")
struct CredentialStoreConformance {
    static func credential(id: String = UUID().uuidString, owner: String = "user-1", at t: Date = Fixture.t0) -> ApplicationCredential {
        ApplicationCredential(id: id, ownerKind: .user, ownerID: owner, ownerMethod: "password", name: "ci", description: "d",
                              secretHash: Fixture.hash(), groups: ["dev"], createdAt: t, expiresAt: t + 3600, createdBy: "test")
    }

    @Test(arguments: Backends.all)
    func credentialsRoundTripAndIdsAreUnique(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let c = Self.credential(id: "abc")
            try await store.createCredential(c)
            #expect(try await store.credential(id: "abc") == c)
            await #expect(throws: StorageError.self) { try await store.createCredential(Self.credential(id: "abc")) }
            var noGroups = Self.credential(id: "all-groups")
            noGroups.groups = nil
            try await store.createCredential(noGroups)
            #expect(try await store.credential(id: "all-groups")?.groups == nil, "nil (all groups) differs from []")
            #expect(try await store.listCredentials(ownerID: "user-1", includeRevoked: false).count == 2)
            #expect(try await store.listCredentials(ownerID: "someone-else", includeRevoked: false).isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func theWebhookLookupReturnsTheCredentialWithItsRobotAsItIsNow(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let robot = Robot(id: "rb", name: "deployer", team: "platform", description: "ships <things> & \"more\"",
                              groups: ["deploy", "CN=Ops,OU=x"], createdAt: Fixture.t0, createdBy: "admin")
            try await store.createRobot(robot)
            var rc = Self.credential(id: "robot-cred", owner: "rb")
            rc.ownerKind = .robot
            rc.ownerMethod = "robot"
            try await store.createCredential(rc)
            let (c, r) = try #require(try await store.credentialWithRobot(id: "robot-cred"))
            #expect(c == rc)
            #expect(r == robot)
            // Disabled shows at once; a person's credential has no robot; a user whose id equals a
            // robot id does not pick up that robot; unknown ids are nil.
            #expect(try await store.setRobotDisabled(id: "rb", disabled: true))
            #expect(try await store.credentialWithRobot(id: "robot-cred")?.1?.disabled == true)
            try await store.createCredential(Self.credential(id: "user-cred", owner: "rb"))
            let (uc, ur) = try #require(try await store.credentialWithRobot(id: "user-cred"))
            #expect(uc.ownerKind == .user && ur == nil)
            #expect(try await store.credentialWithRobot(id: "nope") == nil)
            // The robot deleted: the credential is still found (so the answer says why), without a robot.
            #expect(try await store.deleteRobot(id: "rb"))
            let after = try await store.credentialWithRobot(id: "robot-cred")
            #expect(after?.1 == nil)
        }
    }

    @Test(arguments: Backends.all)
    func rotationKeepsThePreviousHashAndRefusesDeadCredentials(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let c = Self.credential(id: "rot")
            try await store.createCredential(c)
            let rotated = try #require(try await store.rotateCredential(id: "rot", newSecretHash: "new", previousValidUntil: Fixture.t0 + 60, now: Fixture.t0))
            #expect(rotated.secretHash == "new" && rotated.previousSecretHash == c.secretHash && rotated.previousExpiresAt == Fixture.t0 + 60)
            #expect(try await store.rotateCredential(id: "rot", newSecretHash: "x", previousValidUntil: Fixture.t0, now: Fixture.t0 + 4000) == nil,
                    "an expired credential does not rotate")
            #expect(try await store.revokeCredential(id: "rot", now: Fixture.t0 + 1))
            #expect(try await store.revokeCredential(id: "rot", now: Fixture.t0 + 2) == false, "revoked once")
            #expect(try await store.rotateCredential(id: "rot", newSecretHash: "y", previousValidUntil: Fixture.t0, now: Fixture.t0 + 3) == nil)
            #expect(try await store.listCredentials(ownerID: nil, includeRevoked: false).isEmpty)
            #expect(try await store.listCredentials(ownerID: nil, includeRevoked: true).count == 1)
        }
    }

    @Test(arguments: Backends.all)
    func revokingAnOwnersCredentialsCountsOnlyLiveOnes(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            for i in 0..<3 { try await store.createCredential(Self.credential(id: "c\(i)", owner: "o")) }
            _ = try await store.revokeCredential(id: "c0", now: Fixture.t0)
            #expect(try await store.revokeCredentials(ownerID: "o", now: Fixture.t0) == 2)
        }
    }

    @Test(arguments: Backends.all)
    func lastUsedNeverMovesBackwards(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await store.createCredential(Self.credential(id: "u"))
            try await store.touchCredentials(["u": Fixture.t0 + 100, "missing": Fixture.t0])
            try await store.touchCredentials(["u": Fixture.t0 + 50])
            #expect(try await store.credential(id: "u")?.lastUsedAt == Fixture.t0 + 100)
        }
    }

    @Test(arguments: Backends.all)
    func robotsHaveUniqueNamesAndCanBeDisabledAndDeleted(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            let r = Robot(id: "r1", name: "ci", team: "platform", description: "", groups: ["deployers"], createdAt: Fixture.t0, createdBy: "t")
            try await store.createRobot(r)
            #expect(try await store.robot(name: "ci") == r)
            await #expect(throws: StorageError.self) {
                try await store.createRobot(Robot(id: "r2", name: "ci", team: "x", description: "", groups: [], createdAt: Fixture.t0, createdBy: "t"))
            }
            #expect(try await store.setRobotDisabled(id: "r1", disabled: true))
            #expect(try await store.robot(id: "r1")?.disabled == true)
            #expect(try await store.setRobotDisabled(id: "nope", disabled: true) == false)
            #expect(try await store.deleteRobot(id: "r1"))
            #expect(try await store.listRobots().isEmpty)
        }
    }
}
