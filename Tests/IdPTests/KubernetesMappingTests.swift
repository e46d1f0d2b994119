import Foundation
import IdP
import Testing

@Suite("Kubernetes identity mapping")
struct KubernetesMappingTests {
    static func person(_ name: String = "alice", email: String = "", verified: Bool = false, groups: [String] = []) -> Identity {
        Identity(subject: "sub-\(name)", username: name, displayName: name, email: email, emailVerified: verified, groups: groups, isAdmin: false)
    }

    @Test func systemGroupsNeverLeaveWithAnEmptyPrefix() {
        let m = KubernetesMapping(usernameClaim: "preferred_username", usernamePrefix: "", groupsPrefix: "")
        let (kept, dropped) = m.groups(["dev", "system:masters", "SYSTEM:nodes", "system:", "systems"])
        #expect(kept == ["dev", "systems"])
        #expect(dropped == ["system:masters", "SYSTEM:nodes", "system:"])
        #expect(m.kubernetesGroups(["system:masters", "ops"]) == ["ops"])
    }

    @Test func aPrefixMakesThemHarmless() {
        let m = KubernetesMapping()
        #expect(m.groups(["system:masters"]).kept == ["system:masters"], "oidc:system:masters is an ordinary group")
        #expect(m.kubernetesGroups(["system:masters"]) == ["oidc:system:masters"])
    }

    @Test func aPrefixThatIsItselfReservedDropsEverything() {
        let m = KubernetesMapping(usernameClaim: "preferred_username", usernamePrefix: "oidc:", groupsPrefix: "system:")
        #expect(m.groups(["dev"]).kept.isEmpty)
    }

    @Test func reservedUsernamesAreRefused() throws {
        let m = KubernetesMapping(usernameClaim: "preferred_username", usernamePrefix: "", groupsPrefix: "")
        guard case .failure(let why) = m.username(Self.person("system:admin")) else { Issue.record("system:admin was issued"); return }
        #expect(why.reason == "reserved username")
        #expect(try m.username(Self.person("alice")).get() == "alice")
    }

    @Test func emailUsernamesNeedAVerifiedEmail() throws {
        let m = KubernetesMapping(usernameClaim: "email", usernamePrefix: "oidc:", groupsPrefix: "oidc:")
        guard case .failure(let none) = m.username(Self.person()) else { Issue.record("no email, yet a name"); return }
        #expect(none.reason == "no email address")
        #expect(none.description.contains("no email address"))
        guard case .failure(let unverified) = m.username(Self.person(email: "a@example.org")) else { Issue.record("unverified email used"); return }
        #expect(unverified.reason == "email not verified")
        #expect(try m.username(Self.person(email: "a@example.org", verified: true)).get() == "oidc:a@example.org")
    }

    @Test func aPersonCannotTakeARobotsName() throws {
        let m = KubernetesMapping()
        guard case .failure = m.username(Self.person("robot:ci")) else { Issue.record("a person was named robot:ci"); return }
        let robot = Identity(subject: "r1", username: "robot:ci", displayName: "ci", email: "", emailVerified: false, groups: [], isAdmin: false)
        #expect(try m.username(robot, robot: true).get() == "oidc:robot:ci")
    }

    @Test func emptyPrefixesAreWarnedAbout() {
        #expect(KubernetesMapping().emptyPrefixWarnings.isEmpty)
        let m = KubernetesMapping(usernameClaim: "preferred_username", usernamePrefix: "", groupsPrefix: "")
        #expect(m.emptyPrefixWarnings.count == 2)
    }
}
