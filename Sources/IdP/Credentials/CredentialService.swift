import Foundation
import Logging

public struct CredentialPolicy: Sendable {
    /// Longest lifetime of a person's credential (expiry is mandatory).
    public var maxUserLifetime: TimeInterval = 90 * 86400
    /// Longest lifetime of a robot's credential.
    public var maxRobotLifetime: TimeInterval = 365 * 86400
    /// Longest overlap during which a rotated-out secret keeps working.
    public var maxRotationOverlap: TimeInterval = 7 * 86400
    /// How Kubernetes names people and robots: the same rule as the OIDC flags, so one RBAC
    /// binding covers the webhook and the id_token paths.
    public var kubernetes = KubernetesMapping()
    public init() {}
}

public struct CredentialError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Who a valid credential stands for, in Kubernetes terms (TokenReview `status.user`).
public struct CredentialPrincipal: Sendable, Equatable {
    public var username: String
    public var uid: String
    public var groups: [String]
    public var credentialID: String
    /// The owner's identity as the OIDC side names it (for minting id_tokens).
    public var identity: Identity
    public var isRobot: Bool

    public init(username: String, uid: String, groups: [String], credentialID: String, identity: Identity, isRobot: Bool = false) {
        self.username = username; self.uid = uid; self.groups = groups; self.credentialID = credentialID; self.identity = identity
        self.isRobot = isRobot
    }
}

public enum CredentialCheck: Sendable, Equatable {
    case valid(CredentialPrincipal)
    case invalid(String)
}

/// Application credentials: create (secret shown once), rotate with overlap, revoke, validate.
public struct CredentialService: Sendable {
    let store: any Storage
    let provider: Provider
    let policy: CredentialPolicy
    let clock: any Clock
    let random: any RandomSource
    let usage: CredentialUsage
    let auditor: Auditor

    /// Verified credentials in memory (nil or a zero TTL: every check asks the database), valid while
    /// `changes` reports no change.
    let cache: CredentialCache?
    let changes: (any CredentialChanges)?

    public init(store: any Storage, provider: Provider, policy: CredentialPolicy, usage: CredentialUsage, clock: any Clock,
                random: any RandomSource, logger: Logger, cache: CredentialCache? = nil, changes: (any CredentialChanges)? = nil) {
        self.store = store; self.provider = provider; self.policy = policy; self.usage = usage; self.clock = clock
        self.random = random; self.auditor = Auditor(store: store, clock: clock, logger: logger)
        self.cache = cache; self.changes = changes
    }

    public enum Owner: Sendable {
        case user(Identity, method: String)
        case robot(Robot)
    }

    /// Creates a credential; the returned token is the only time the secret exists outside the caller.
    public func create(owner: Owner, name rawName: String, description: String, lifetime: TimeInterval, groups: [String]?,
                       actor: String, remoteAddress: String = "") async throws -> (ApplicationCredential, token: String) {
        let name = rawName.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 100 else { throw CredentialError("Give the credential a name (at most 100 characters).") }
        guard description.count <= 500 else { throw CredentialError("The description is too long (at most 500 characters).") }
        let ownerGroups: [String]
        let kind: ApplicationCredential.OwnerKind
        let ownerID: String
        let method: String
        let max: TimeInterval
        switch owner {
        case .user(let identity, let m):
            ownerGroups = identity.groups; kind = .user; ownerID = identity.subject; method = m; max = policy.maxUserLifetime
        case .robot(let robot):
            guard !robot.disabled else { throw CredentialError("The robot \(robot.name) is disabled.") }
            ownerGroups = robot.groups; kind = .robot; ownerID = robot.id; method = "robot"; max = policy.maxRobotLifetime
        }
        guard lifetime >= 60 else { throw CredentialError("A credential must live at least a minute.") }
        guard lifetime <= max else { throw CredentialError("A credential may live at most \(DurationParser.words(max)).") }
        var restriction: [String]?
        if let groups {
            let wanted = Array(Set(groups.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })).sorted()
            let missing = wanted.filter { !ownerGroups.contains($0) }
            guard missing.isEmpty else { throw CredentialError("Not a group of the owner: \(missing.joined(separator: ", ")).") }
            restriction = wanted
        }
        let token = CredentialToken.generate(random: random)
        let now = clock.now()
        let c = ApplicationCredential(id: token.id, ownerKind: kind, ownerID: ownerID, ownerMethod: method, name: name,
                                      description: description, secretHash: token.secretHash, groups: restriction,
                                      createdAt: now, expiresAt: now + lifetime, createdBy: actor)
        try await store.createCredential(c)
        await auditor.record("credential.create", actor: actor, subject: c.id, remoteAddress: remoteAddress,
                             details: ["owner": ownerID, "kind": kind.rawValue, "name": name, "expires": "\(Int(c.expiresAt.timeIntervalSince1970))"])
        return (c, token.string)
    }

    /// A new secret; the old one keeps working for `overlap`, then dies.
    public func rotate(id: String, overlap: TimeInterval, actor: String, remoteAddress: String = "") async throws -> (ApplicationCredential, token: String) {
        guard overlap >= 0, overlap <= policy.maxRotationOverlap else {
            throw CredentialError("The overlap may be at most \(DurationParser.words(policy.maxRotationOverlap)).")
        }
        let token = CredentialToken(id: id, secret: CredentialToken.generate(random: random).secret)
        let now = clock.now()
        guard let c = try await store.rotateCredential(id: id, newSecretHash: token.secretHash, previousValidUntil: now + overlap, now: now) else {
            throw CredentialError("That credential is unknown, revoked or expired.")
        }
        await auditor.record("credential.rotate", actor: actor, subject: id, remoteAddress: remoteAddress,
                             details: ["overlap": "\(Int(overlap))"])
        return (c, token.string)
    }

    public func revoke(id: String, actor: String, remoteAddress: String = "") async throws -> Bool {
        let done = try await store.revokeCredential(id: id, now: clock.now())
        if done { await auditor.record("credential.revoke", actor: actor, subject: id, remoteAddress: remoteAddress) }
        return done
    }

    /// Checks a presented token: format and checksum first (no storage), then the stored hash
    /// (constant-time), expiry, revocation, and the owner as of now — a disabled owner or a
    /// lost group bites at once.
    public func validate(_ presented: String) async -> CredentialCheck {
        guard let token = CredentialToken.parse(presented) else { return .invalid("malformed token") }
        let now = clock.now()
        // From memory when nothing changed since it was verified (a revocation anywhere moves the generation).
        guard let cache, cache.enabled, let changes, let generation = await changes.credentialGeneration() else {
            return await check(token, now: now).0
        }
        let key = token.id + ":" + token.secretHash
        if let known = cache.lookup(key, generation: generation, now: now) {
            if case .valid(let principal) = known { usage.record(principal.credentialID, at: now) }
            return known
        }
        // Refusals are kept too (a creation, like any change, moves the generation); an outage's answer never.
        let (result, until) = await check(token, now: now)
        if let until { cache.store(key, result, generation: generation, until: min(until, now + cache.ttl)) }
        return result
    }

    static let storageUnavailable = "storage unavailable"

    /// The check itself, against the database, and until when its answer can hold (nil: not at all): the
    /// credential's end or the rotated-out secret's; for a directory person, what the directory cache allows.
    func check(_ token: CredentialToken, now: Date) async -> (CredentialCheck, Date?) {
        var until: Date? = .distantFuture
        let result: CredentialCheck = await {
        do {
            guard let (c, ownerRobot) = try await store.credentialWithRobot(id: token.id) else { return .invalid("unknown credential") }
            let hash = token.secretHash
            var matches = Secrets.constantTimeEqual(hash, c.secretHash)
            until = c.expiresAt
            if !matches, let prev = c.previousSecretHash, let previousUntil = c.previousExpiresAt, now < previousUntil {
                matches = Secrets.constantTimeEqual(hash, prev)
                until = min(c.expiresAt, previousUntil)
            }
            guard matches else { return .invalid("unknown credential") }
            if c.revokedAt != nil { return .invalid("credential revoked") }
            if c.expiresAt <= now { return .invalid("credential expired") }
            let principal: CredentialPrincipal
            let k = policy.kubernetes
            switch c.ownerKind {
            case .user:
                // The directory reports no changes: a directory person's answer (either way) is kept no longer than
                // the directory's own cache keeps them (ldap.cache_lifetime; 0 = asked every time).
                if c.ownerMethod != LocalAuthenticator.methodName, let bound = until {
                    let directoryCache = provider.directory?.cacheLifetime ?? 0
                    until = directoryCache > 0 ? min(bound, now + directoryCache) : nil
                }
                guard let identity = try await provider.currentIdentity(userID: c.ownerID, method: c.ownerMethod) else {
                    return .invalid("owner disabled or deleted")
                }
                var scoped = identity
                scoped.groups = c.groups.map { r in identity.groups.filter { r.contains($0) } } ?? identity.groups
                let (safe, dropped) = k.safe(scoped)
                if !dropped.isEmpty { await groupsDropped(dropped, identity: identity, credentialID: c.id) }
                let username: String
                switch k.username(safe) {
                case .success(let n): username = n
                case .failure(let why): return .invalid("owner has no usable Kubernetes name: \(why.reason)")
                }
                principal = CredentialPrincipal(username: username, uid: identity.subject, groups: safe.groups.map { k.groupsPrefix + $0 },
                                                credentialID: c.id, identity: safe)
            case .robot:
                guard let robot = ownerRobot, !robot.disabled else { return .invalid("robot disabled or deleted") }
                let groups = c.groups.map { r in robot.groups.filter { r.contains($0) } } ?? robot.groups
                let (kept, dropped) = k.groups(groups)
                let identity = Identity(subject: robot.id, username: robot.username, displayName: robot.name, email: "", emailVerified: false,
                                        groups: kept, isAdmin: false)
                if !dropped.isEmpty { await groupsDropped(dropped, identity: identity, credentialID: c.id) }
                // With username_claim email, robots (no email) are named `prefix + robot:NAME` here, and
                // the token exchange refuses them: one path, one name.
                let username: String
                switch k.username(identity, robot: true) {
                case .success(let n): username = n
                case .failure: username = k.usernamePrefix + robot.username
                }
                guard !KubernetesMapping.isReserved(username) else { return .invalid("robot name in the reserved system: namespace") }
                principal = CredentialPrincipal(username: username, uid: robot.id, groups: kept.map { k.groupsPrefix + $0 },
                                                credentialID: c.id, identity: identity, isRobot: true)
            }
            usage.record(c.id, at: now)
            return .valid(principal)
        } catch {
            until = nil
            return .invalid(Self.storageUnavailable)
        }
        }()
        return (result, until)
    }
}

extension CredentialService {
    func groupsDropped(_ dropped: [String], identity: Identity, credentialID: String) async {
        await auditor.record("identity.group_dropped", actor: identity.username, subject: identity.subject, success: false,
                             details: ["groups": dropped.joined(separator: ","), "reason": "reserved system: group", "credential": credentialID])
    }
}

/// "Last used" without a write per request: uses are collected in memory and flushed in one
/// batch (see `flush`, called periodically by the server). Behind a lock, not an actor: recording
/// is on every valid review, which otherwise answers from memory without a suspension.
public final class CredentialUsage: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [String: Date] = [:]
    public init() {}

    public func record(_ id: String, at: Date) {
        lock.withLock {
            if let prev = pending[id], prev >= at { return }
            pending[id] = at
        }
    }

    /// Writes what was collected; on failure the entries are kept for the next flush.
    public func flush(to store: any CredentialStore) async {
        let batch = lock.withLock {
            let batch = pending
            pending = [:]
            return batch
        }
        guard !batch.isEmpty else { return }
        do { try await store.touchCredentials(batch) } catch {
            lock.withLock {
                for (k, v) in batch where (pending[k] ?? .distantPast) < v { pending[k] = v }
            }
        }
    }
}
