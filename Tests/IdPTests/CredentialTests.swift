import Foundation
import IdP
import Testing

@Suite("Application credentials")
struct CredentialTests {
    func service(_ h: Harness, usage: CredentialUsage = CredentialUsage()) -> CredentialService {
        CredentialService(store: h.store, provider: h.provider, policy: CredentialPolicy(), usage: usage, clock: h.clock, random: h.random,
                          logger: Harness.logger)
    }

    @Test func tokenFormatRoundTripsAndJunkIsRefusedWithoutStorage() {
        let t = CredentialToken.generate(random: SystemRandom())
        let s = t.string
        #expect(s.hasPrefix("kpc_") && s.utf8.count == 70)
        #expect(CredentialToken.parse(s) == t)
        #expect(CredentialToken.parse(String(s.dropLast())) == nil, "truncated")
        #expect(CredentialToken.parse(s + "0") == nil, "padded")
        #expect(CredentialToken.parse(s.uppercased()) == nil, "re-cased")
        #expect(CredentialToken.parse(s.lowercased()) == nil, "re-cased")
        var flipped = Array(s)
        flipped[30] = flipped[30] == "A" ? "B" : "A"
        #expect(CredentialToken.parse(String(flipped)) == nil, "checksum catches a changed character")
        #expect(CredentialToken.parse("kpc_" + String(repeating: "0", count: 66)) == nil)
        // 10,000 fresh tokens: all distinct ids, all parse.
        var ids = Set<String>()
        for _ in 0..<10_000 {
            let x = CredentialToken.generate(random: SystemRandom())
            #expect(CredentialToken.parse(x.string) != nil)
            ids.insert(x.id)
        }
        #expect(ids.count == 10_000)
    }

    @Test func expiryRotationOverlapAndRevocationFollowTheClock() async throws {
        try await Harness.with { h in
            let svc = service(h)
            let owner = Identity(user: h.alice)
            let (c, token) = try await svc.create(owner: .user(owner, method: "password"), name: "ci", description: "", lifetime: 3600,
                                                  groups: nil, actor: "test")
            guard case .valid(let p) = await svc.validate(token) else { Issue.record("fresh credential refused"); return }
            #expect(p.uid == h.alice.id && p.credentialID == c.id)

            let (_, second) = try await svc.rotate(id: c.id, overlap: 600, actor: "test")
            #expect(await svc.validate(token) != .invalid("unknown credential"), "old secret works during the overlap")
            h.clock.advance(601)
            #expect(await svc.validate(token) == .invalid("unknown credential"), "and dies after it")
            guard case .valid = await svc.validate(second) else { Issue.record("new secret refused"); return }

            h.clock.advance(3600)
            #expect(await svc.validate(second) == .invalid("credential expired"))
            await #expect(throws: CredentialError.self) { _ = try await svc.rotate(id: c.id, overlap: 0, actor: "test") }
        }
    }

    @Test func lifetimeAndGroupRulesAreEnforced() async throws {
        try await Harness.with { h in
            let svc = service(h)
            let owner = Identity(user: h.alice)
            await #expect(throws: CredentialError.self) {
                _ = try await svc.create(owner: .user(owner, method: "password"), name: "x", description: "", lifetime: 91 * 86400, groups: nil, actor: "t")
            }
            await #expect(throws: CredentialError.self) {
                _ = try await svc.create(owner: .user(owner, method: "password"), name: "  ", description: "", lifetime: 3600, groups: nil, actor: "t")
            }
            await #expect(throws: CredentialError.self) {
                _ = try await svc.create(owner: .user(owner, method: "password"), name: "x", description: "", lifetime: 3600,
                                         groups: ["not-a-group-of-alice"], actor: "t")
            }
            let robot = Robot(id: "r1", name: "ci", team: "platform", description: "", groups: ["deployers"], createdAt: h.clock.now(), createdBy: "t")
            try await h.store.createRobot(robot)
            let (_, token) = try await svc.create(owner: .robot(robot), name: "pipe", description: "", lifetime: 200 * 86400, groups: nil, actor: "t")
            guard case .valid(let p) = await svc.validate(token) else { Issue.record("robot credential refused"); return }
            // The same name kube-apiserver gives an exchanged id_token (prefix + preferred_username): one RBAC binding.
            #expect(p.username == "oidc:robot:ci" && p.groups == ["oidc:deployers"])
            _ = try await h.store.setRobotDisabled(id: "r1", disabled: true)
            #expect(await svc.validate(token) == .invalid("robot disabled or deleted"))
        }
    }

    @Test func usageIsBatchedNotWrittenPerValidation() async throws {
        try await Harness.with { h in
            let usage = CredentialUsage()
            let svc = service(h, usage: usage)
            let (c, token) = try await svc.create(owner: .user(Identity(user: h.alice), method: "password"), name: "u", description: "",
                                                  lifetime: 3600, groups: nil, actor: "t")
            for _ in 0..<5 { _ = await svc.validate(token) }
            #expect(try await h.store.credential(id: c.id)?.lastUsedAt == nil)
            await usage.flush(to: h.store)
            #expect(try await h.store.credential(id: c.id)?.lastUsedAt == h.clock.now())
        }
    }

    @Test func tokenReviewChecksVersionAndKindFirstAndEchoesTheVersion() async throws {
        let ok: @Sendable (String) async -> CredentialCheck = { _ in
            .valid(CredentialPrincipal(username: "robot:x", uid: "u1", groups: ["g"], credentialID: "c1",
                                       identity: Identity(subject: "u1", username: "robot:x", displayName: "", email: "", emailVerified: false, groups: ["g"], isAdmin: false)))
        }
        for v in TokenReview.versions {
            let r = await TokenReview.handle(Data(#"{"apiVersion":"\#(v)","kind":"TokenReview","spec":{"token":"t"}}"#.utf8), acceptedAudiences: [], validate: ok)
            #expect(r.status == 200 && r.authenticated && r.json.contains(#""apiVersion":"\#(v)""#))
        }
        let bad = await TokenReview.handle(Data(#"{"apiVersion":"v1","kind":"TokenReview","spec":{"token":"t"}}"#.utf8), acceptedAudiences: [], validate: ok)
        #expect(bad.status == 400)
        let junk = await TokenReview.handle(Data("[1,2".utf8), acceptedAudiences: [], validate: ok)
        #expect(junk.status == 400)
    }
}
