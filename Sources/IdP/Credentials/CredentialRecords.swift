import Foundation

/// A robot account: not a person, owned by a team, with a username that can never collide
/// with a person's ("robot:<name>").
public struct Robot: Sendable, Equatable {
    public var id: String
    /// Short name; the Kubernetes username is `Robot.usernamePrefix + name`.
    public var name: String
    /// The team (a group name) that owns it.
    public var team: String
    public var description: String
    public var groups: [String]
    public var disabled: Bool
    public var createdAt: Date
    public var createdBy: String

    public static let usernamePrefix = "robot:"
    public var username: String { Self.usernamePrefix + name }

    public init(id: String, name: String, team: String, description: String, groups: [String], disabled: Bool = false,
                createdAt: Date, createdBy: String) {
        self.id = id; self.name = name; self.team = team; self.description = description; self.groups = groups
        self.disabled = disabled; self.createdAt = createdAt; self.createdBy = createdBy
    }
}

/// An application credential: a long-lived secret for a robot or a person's scripts, shown once,
/// stored as a hash, always expiring, revocable, optionally limited to some of the owner's groups.
public struct ApplicationCredential: Sendable, Equatable {
    public enum OwnerKind: String, Sendable, Codable { case user, robot }
    /// Public id, embedded in the token (lookup key).
    public var id: String
    public var ownerKind: OwnerKind
    /// User id (subject) or robot id.
    public var ownerID: String
    /// The authenticator that vouches for a user owner ("password", "ldap" …); "robot" for robots.
    public var ownerMethod: String
    public var name: String
    public var description: String
    /// SHA-256 (hex) of the secret part.
    public var secretHash: String
    /// After a rotation: the previous secret's hash, valid until `previousExpiresAt`.
    public var previousSecretHash: String?
    public var previousExpiresAt: Date?
    /// nil: all of the owner's groups; otherwise only these (and only while the owner has them).
    public var groups: [String]?
    public var createdAt: Date
    public var expiresAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?
    public var createdBy: String

    public init(id: String, ownerKind: OwnerKind, ownerID: String, ownerMethod: String, name: String, description: String,
                secretHash: String, previousSecretHash: String? = nil, previousExpiresAt: Date? = nil, groups: [String]?,
                createdAt: Date, expiresAt: Date, lastUsedAt: Date? = nil, revokedAt: Date? = nil, createdBy: String) {
        self.id = id; self.ownerKind = ownerKind; self.ownerID = ownerID; self.ownerMethod = ownerMethod; self.name = name
        self.description = description; self.secretHash = secretHash; self.previousSecretHash = previousSecretHash
        self.previousExpiresAt = previousExpiresAt; self.groups = groups; self.createdAt = createdAt; self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt; self.revokedAt = revokedAt; self.createdBy = createdBy
    }
}

public protocol CredentialStore: Sendable {
    /// Throws `.conflict` when the id exists.
    func createCredential(_ c: ApplicationCredential) async throws
    func credential(id: String) async throws -> ApplicationCredential?
    /// The credential and, when a robot owns it, that robot as it is now — one read (the webhook's
    /// lookup). The robot is nil for people's credentials and when the robot no longer exists.
    func credentialWithRobot(id: String) async throws -> (ApplicationCredential, Robot?)?
    /// Newest first; only one owner's when `ownerID` is given; revoked ones included when asked.
    func listCredentials(ownerID: String?, includeRevoked: Bool) async throws -> [ApplicationCredential]
    /// Atomically replaces the secret of a live credential: the current hash becomes the previous one,
    /// valid until `previousValidUntil`. Returns the updated record, or nil when the credential is
    /// unknown, revoked or expired.
    func rotateCredential(id: String, newSecretHash: String, previousValidUntil: Date, now: Date) async throws -> ApplicationCredential?
    /// Marks it revoked (once). Returns true when this call revoked it.
    func revokeCredential(id: String, now: Date) async throws -> Bool
    /// Revokes every live credential of an owner; returns how many.
    func revokeCredentials(ownerID: String, now: Date) async throws -> Int
    /// Records last use, never moving a timestamp backwards. Batched by callers (not per request).
    func touchCredentials(_ lastUsed: [String: Date]) async throws
}

public protocol RobotStore: Sendable {
    /// Throws `.conflict` when the id or the name exists.
    func createRobot(_ r: Robot) async throws
    func robot(id: String) async throws -> Robot?
    func robot(name: String) async throws -> Robot?
    func listRobots() async throws -> [Robot]
    /// Returns false when there is no such robot.
    func setRobotDisabled(id: String, disabled: Bool) async throws -> Bool
    func deleteRobot(id: String) async throws -> Bool
}
