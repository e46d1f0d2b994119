import Foundation

/// How Kubernetes names the people and robots the portal vouches for — the same rule on every
/// path (id_token claims as kube-apiserver maps them, the TokenReview webhook, the token
/// exchange), so one RBAC binding covers them all. It is a security boundary:
/// - nothing handed to Kubernetes falls in the reserved `system:` namespace (a group named
///   `system:masters` with an empty groups prefix would be cluster-admin that RBAC cannot take back);
/// - the claim a username comes from must be present (and for `email`, verified): an empty
///   claim would make every such person the same Kubernetes user (the bare prefix);
/// - a person's name can never be a robot's (`robot:` is the robots' namespace).
public struct KubernetesMapping: Sendable, Equatable {
    public var usernameClaim = "preferred_username"
    public var usernamePrefix = "oidc:"
    public var groupsPrefix = "oidc:"

    /// Kubernetes reserves this prefix for its own users and groups.
    public static let reserved = "system:"

    public init() {}
    public init(usernameClaim: String, usernamePrefix: String, groupsPrefix: String) {
        self.usernameClaim = usernameClaim; self.usernamePrefix = usernamePrefix; self.groupsPrefix = groupsPrefix
    }

    /// Why Kubernetes cannot be given a name for someone; `description` is shown to the person.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let description: String
        /// Short reason for audit details.
        public let reason: String
    }

    static func isReserved(_ s: String) -> Bool {
        s.utf8.count >= 7 && s.lowercased().hasPrefix(reserved)
    }

    /// The Kubernetes username of a person (`robot: false`) or a robot whose `identity.username`
    /// is `robot:NAME` — exactly what kube-apiserver computes from an id_token with these claims.
    public func username(_ identity: Identity, robot: Bool = false) -> Result<String, Refusal> {
        let value: String
        switch usernameClaim {
        case "sub":
            value = identity.subject
        case "email":
            if robot {
                return .failure(.init(description: "Robots have no email address, and Kubernetes names users by their email here; use the TokenReview webhook for robots.",
                                      reason: "robot has no email"))
            }
            guard !identity.email.isEmpty else {
                return .failure(.init(description: "Your account has no email address, and Kubernetes names people by their email address. Ask an administrator to add one.",
                                      reason: "no email address"))
            }
            guard identity.emailVerified else {
                return .failure(.init(description: "Your email address is not verified, and Kubernetes names people by their verified email address. Ask an administrator.",
                                      reason: "email not verified"))
            }
            value = identity.email
        default:
            value = identity.username
        }
        guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .failure(.init(description: "Your account has no \(usernameClaim), which Kubernetes takes your name from.", reason: "empty \(usernameClaim)"))
        }
        if !robot && usernameClaim != "sub" && value.lowercased().hasPrefix(Robot.usernamePrefix) {
            return .failure(.init(description: "The name \(value) is in the robots' namespace (robot:) and cannot be given to a person.",
                                  reason: "name in the robot namespace"))
        }
        let name = usernamePrefix + value
        if Self.isReserved(name) {
            return .failure(.init(description: "The Kubernetes name \(name) is in the reserved system: namespace and is never issued.",
                                  reason: "reserved username"))
        }
        return .success(name)
    }

    /// Splits raw (unprefixed) groups into those Kubernetes may see and those that would become
    /// `system:` groups once prefixed (they are dropped, and the caller audits it).
    public func groups(_ groups: [String]) -> (kept: [String], dropped: [String]) {
        guard groups.contains(where: { Self.isReserved(groupsPrefix + $0) }) else { return (groups, []) }
        var kept: [String] = [], dropped: [String] = []
        for g in groups {
            if Self.isReserved(groupsPrefix + g) { dropped.append(g) } else { kept.append(g) }
        }
        return (kept, dropped)
    }

    /// The identity with reserved groups removed (what any token may carry).
    public func safe(_ identity: Identity) -> (identity: Identity, dropped: [String]) {
        let (kept, dropped) = groups(identity.groups)
        guard !dropped.isEmpty else { return (identity, []) }
        var i = identity
        i.groups = kept
        return (i, dropped)
    }

    /// Kubernetes group names (prefixed) of raw groups, reserved ones removed.
    public func kubernetesGroups(_ groups: [String]) -> [String] {
        self.groups(groups).kept.map { groupsPrefix + $0 }
    }

    /// A warning for `check-config` when a prefix is empty (names then reach Kubernetes as they
    /// are in the directory), nil otherwise.
    public var emptyPrefixWarnings: [String] {
        var w: [String] = []
        if usernamePrefix.isEmpty {
            w.append("kubernetes.apiserver.username_prefix is empty: directory names reach Kubernetes unprefixed and can collide with other authenticators' users; names in system: are refused, but set a prefix such as \"oidc:\"")
        }
        if groupsPrefix.isEmpty {
            w.append("kubernetes.apiserver.groups_prefix is empty: directory groups reach Kubernetes unprefixed, and anyone who can name a group can target RBAC bindings of other authenticators; system: groups are dropped, but set a prefix such as \"oidc:\"")
        }
        return w
    }
}
