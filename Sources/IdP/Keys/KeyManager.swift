import Foundation
import Logging

public struct KeyPolicy: Sendable {
    public var algorithm: SigningAlgorithm
    /// How long one key signs before its successor takes over.
    public var rotationPeriod: TimeInterval
    /// Minimum time a new key sits in JWKS before it may sign.
    public var publishAhead: TimeInterval
    /// The longest lifetime of anything signed (id_token, access token), plus clock skew:
    /// a retired key stays in JWKS this long after it stopped signing.
    public var retainAfterRetire: TimeInterval
    /// The least time any key is in JWKS before it signs, routine rotations included: at least
    /// `publishAhead`, and at least the JWKS max-age plus every replica's check interval (set by
    /// the server), so that no verifier holding a cached JWKS can meet an unknown key.
    public var minimumPublished: TimeInterval = 0
    /// How long verifiers may cache JWKS (`Cache-Control: max-age` on /keys).
    public static let jwksMaxAge: TimeInterval = 60

    public init(algorithm: SigningAlgorithm = .rs256, rotationPeriod: TimeInterval = 30 * 86400,
                publishAhead: TimeInterval = 3600, retainAfterRetire: TimeInterval = 60 + 300) {
        self.algorithm = algorithm; self.rotationPeriod = rotationPeriod
        self.publishAhead = publishAhead; self.retainAfterRetire = retainAfterRetire
    }
}

/// Owns the signing keys: which one signs now, what JWKS publishes, and rotation.
///
/// All replicas read the same records and pick the signing key by time alone (the newest
/// key whose `activatesAt` has passed), so they switch at the same instant without talking
/// to each other. Changes to the records (create the next key, retire, expire, reseal) are
/// made by one replica at a time under the "signing-keys" lease.
public actor KeyManager {
    let store: any KeyStore
    let sealer: KeySealer
    let clock: any Clock
    let random: any RandomSource
    let policy: KeyPolicy
    let holder: String
    let logger: Logger

    nonisolated let snapshot = KeySnapshot()

    public init(store: any KeyStore, sealer: KeySealer, clock: any Clock, random: any RandomSource, policy: KeyPolicy, logger: Logger) {
        self.store = store; self.sealer = sealer; self.clock = clock; self.random = random; self.policy = policy
        self.logger = logger
        self.holder = random.token(byteCount: 9)
    }

    /// Loads keys from storage, creating or rotating them when due. Call at start and periodically.
    public func maintain() async throws {
        let now = clock.now()
        let held = try await store.acquireLease(name: "signing-keys", holder: holder, now: now, until: now + Self.leaseDuration)
        if held {
            do {
                try await reconcile(now: now)
                try await store.releaseLease(name: "signing-keys", holder: holder)
            } catch {
                try? await store.releaseLease(name: "signing-keys", holder: holder)
                throw error
            }
        }
        try await reload()
        // Another replica holds the lease and is creating the first key (replicas started
        // together on an empty database): look again at once instead of at the next check.
        var waited = 0
        while !held, !(hasSigningKey && hasNextKey), waited < 100 {
            try await Task.sleep(nanoseconds: 100_000_000)
            waited += 1
            try await reload()
        }
    }

    /// Key changes take well under a second; a process killed while holding the lease blocks the
    /// others' maintenance for at most this long.
    static let leaseDuration: TimeInterval = 15
    /// `rotate` tries every 200 ms for longer than a lease lasts (a fresh lease taken by a process
    /// killed a moment later still lapses within the wait).
    static let leaseWaitAttempts = Int((leaseDuration + 3) / 0.2)

    nonisolated var hasSigningKey: Bool { (try? signingKey()) != nil }
    nonisolated var hasNextKey: Bool {
        let now = clock.now()
        return snapshot.read { s in s.records.contains { $0.activatesAt > now } }
    }

    public enum Rotation: Sendable { case routine, emergency }

    public struct RotationResult: Sendable {
        /// The key that signs from `signsAt`.
        public var kid: String
        public var signsAt: Date
        /// Keys removed from JWKS at once (emergency rotations).
        public var withdrawn: [String]
    }

    /// Routine: the published next key signs as soon as it has been in JWKS for
    /// `minimumPublished` — at once when it has (the usual case), else at the time returned; the
    /// current key signs until then. Emergency (a suspected compromise): a brand-new key signs
    /// at once and every other key leaves JWKS at once, so nothing signed with them verifies any
    /// more; verifiers holding a JWKS fetched earlier refuse new tokens until they fetch again
    /// (at most `jwksMaxAge`, sooner for those that refetch on an unknown kid).
    @discardableResult
    public func rotate(_ kind: Rotation) async throws -> RotationResult {
        // Another replica may be in the middle of maintenance, or a process killed while holding
        // the lease left it behind: wait until such a lease lapses (leaseDuration) and a little
        // more, so an operator's rotation right after a crash does not fail.
        var acquired = false
        let attempts = Self.leaseWaitAttempts
        for attempt in 0..<attempts {
            let now = clock.now()
            if try await store.acquireLease(name: "signing-keys", holder: holder, now: now, until: now + Self.leaseDuration) { acquired = true; break }
            if attempt < attempts - 1 { try await Task.sleep(nanoseconds: 200_000_000) }
        }
        guard acquired else { throw StorageError.conflict("another process is changing signing keys; try again in a minute") }
        let result: RotationResult
        do {
            result = try await rotateHoldingLease(kind, now: clock.now())
            try await store.releaseLease(name: "signing-keys", holder: holder)
        } catch {
            try? await store.releaseLease(name: "signing-keys", holder: holder)
            throw error
        }
        try await reload()
        return result
    }

    private func rotateHoldingLease(_ kind: Rotation, now: Date) async throws -> RotationResult {
        var recs = try await store.signingKeys().filter { $0.expiresAt.map { $0 > now } ?? true }
        switch kind {
        case .emergency:
            // The new key first: killed at any point after this, a signing key exists (the newest
            // active one wins), and the withdrawals below are simply repeated by the next rotation.
            let fresh = try await createKey(activatesAt: now, now: now)
            var withdrawn: [String] = []
            for i in recs.indices {
                if recs[i].retiresAt == nil || recs[i].retiresAt! > now { recs[i].retiresAt = now }
                recs[i].expiresAt = now
                try await store.updateSigningKey(recs[i])
                withdrawn.append(recs[i].kid)
            }
            logger.warning("EMERGENCY signing key rotation: every earlier key left JWKS", metadata: ["kid": "\(fresh.kid)", "withdrawn": "\(withdrawn)"])
            try await reconcile(now: now)
            return RotationResult(kid: fresh.kid, signsAt: now, withdrawn: withdrawn)
        case .routine:
            guard let i = recs.indices.filter({ recs[$0].activatesAt > now }).min(by: { recs[$0].activatesAt < recs[$1].activatesAt }) else {
                let next = try await createKey(activatesAt: now + policy.minimumPublished, now: now)
                return RotationResult(kid: next.kid, signsAt: next.activatesAt, withdrawn: [])
            }
            let signsAt = max(now, recs[i].createdAt + policy.minimumPublished)
            recs[i].activatesAt = signsAt
            try await store.updateSigningKey(recs[i])
            if signsAt <= now {
                // Retire the current key explicitly (the promoted key may share its activation second).
                if let cur = Self.current(recs.filter { $0.kid != recs[i].kid }, now: now), let ci = recs.firstIndex(where: { $0.kid == cur.kid }) {
                    recs[ci].retiresAt = now
                    recs[ci].expiresAt = now + policy.retainAfterRetire
                    try await store.updateSigningKey(recs[ci])
                }
                try await reconcile(now: now)
            }
            logger.notice("signing key rotation by operator", metadata: ["kid": "\(recs[i].kid)", "signs_at": "\(signsAt)"])
            return RotationResult(kid: recs[i].kid, signsAt: signsAt, withdrawn: [])
        }
    }

    /// Re-reads the records from storage (other replicas may have changed them).
    public func reload() async throws {
        let fresh = try await store.signingKeys()
        var priv: [String: SigningKey] = [:]
        var pub: [String: VerificationKey] = [:]
        for r in fresh {
            if let existing = snapshot.read({ $0.privateKeys[r.kid] }) { priv[r.kid] = existing } else {
                priv[r.kid] = try SigningKey(kid: r.kid, algorithm: r.algorithm, privateDER: try sealer.open(r.sealedPrivateKey))
            }
            pub[r.kid] = priv[r.kid]!.publicKey
        }
        snapshot.replace(records: fresh, privateKeys: priv, publicKeys: pub)
    }

    /// The key that signs at `now`. Like the three readers below, it reads a snapshot that
    /// `reload()` replaces, so request handlers never wait for the actor.
    public nonisolated func signingKey() throws -> SigningKey {
        let now = clock.now()
        return try snapshot.read { s in
            guard let r = Self.current(s.records, now: now), let k = s.privateKeys[r.kid] else { throw KeyManagerError.noSigningKey }
            return k
        }
    }

    /// Keys that verify tokens this portal signed and that may still be alive.
    public nonisolated func verificationKeys() -> [String: VerificationKey] {
        let now = clock.now()
        return snapshot.read { s in
            var out: [String: VerificationKey] = [:]
            for r in s.records where r.expiresAt.map({ $0 > now }) ?? true { out[r.kid] = s.publicKeys[r.kid] }
            return out
        }
    }

    /// The JWKS document (RFC 7517): current, next and recently retired keys.
    public nonisolated func jwks() -> String {
        let now = clock.now()
        return snapshot.read { s in
            if let c = s.cachedJWKS, c.validUntil > now { return c.json }
            let live = s.records.filter { $0.expiresAt.map { $0 > now } ?? true }.sorted { $0.activatesAt < $1.activatesAt }
            let json = #"{"keys":["# + live.map(\.publicJWK).joined(separator: ",") + "]}"
            // Valid until the next change of state among the records.
            let horizons = live.flatMap { [$0.expiresAt, $0.activatesAt > now ? $0.activatesAt : nil] }.compactMap { $0 }
            s.cachedJWKS = (json, horizons.min() ?? now + 60)
            return json
        }
    }

    /// Algorithms of the keys that are published.
    public nonisolated func publishedAlgorithms() -> [SigningAlgorithm] {
        let now = clock.now()
        return snapshot.read { s in
            if let c = s.cachedAlgorithms, c.validUntil > now { return c.algorithms }
            let live = s.records.filter { $0.expiresAt.map { $0 > now } ?? true }
            let algs = Set(live.map(\.algorithm))
            let out = SigningAlgorithm.allCases.filter { algs.contains($0) }
            // Valid until the next change of state among the records (as for the JWKS).
            let horizons = live.flatMap { [$0.expiresAt, $0.activatesAt > now ? $0.activatesAt : nil] }.compactMap { $0 }
            s.cachedAlgorithms = (out, horizons.min() ?? now + 60)
            return out
        }
    }

    public struct Status: Sendable {
        public var kid: String
        public var algorithm: SigningAlgorithm
        public var state: String  // "signing", "next", "retired"
        public var activatesAt: Date
        public var retiresAt: Date?
        public var expiresAt: Date?
        public var encrypted: Bool
    }

    public func status() -> [Status] {
        let now = clock.now()
        let records = snapshot.read { $0.records }
        let cur = Self.current(records, now: now)?.kid
        return records.sorted { $0.activatesAt < $1.activatesAt }.map { r in
            let state = r.kid == cur ? "signing" : (r.activatesAt > now ? "next" : "retired")
            return Status(kid: r.kid, algorithm: r.algorithm, state: state, activatesAt: r.activatesAt, retiresAt: r.retiresAt,
                          expiresAt: r.expiresAt, encrypted: !KeySealer.isPlain(r.sealedPrivateKey))
        }
    }

    // MARK: - Rotation rules

    static func current(_ records: [SigningKeyRecord], now: Date) -> SigningKeyRecord? {
        records.filter { $0.activatesAt <= now && ($0.retiresAt.map { $0 > now } ?? true) }
            .max { ($0.activatesAt, $0.createdAt) < ($1.activatesAt, $1.createdAt) }
    }

    private func reconcile(now: Date) async throws {
        var recs = try await store.signingKeys()

        // Expired keys leave storage.
        for r in recs where (r.expiresAt.map { $0 <= now } ?? false) {
            try await store.deleteSigningKey(kid: r.kid)
            logger.info("signing key removed from JWKS", metadata: ["kid": "\(r.kid)"])
        }
        recs.removeAll { $0.expiresAt.map { $0 <= now } ?? false }

        // Reseal keys stored in clear (or under the older KEK derivation) once a key-encryption key is configured.
        if sealer.encrypts {
            for i in recs.indices where sealer.needsReseal(recs[i].sealedPrivateKey) {
                recs[i].sealedPrivateKey = try sealer.seal(try sealer.open(recs[i].sealedPrivateKey))
                try await store.updateSigningKey(recs[i])
                logger.notice("signing key encrypted at rest", metadata: ["kid": "\(recs[i].kid)"])
            }
        }

        // A fresh install signs at once: nobody has fetched a JWKS yet.
        if Self.current(recs, now: now) == nil && !recs.contains(where: { $0.activatesAt > now }) {
            let first = try await createKey(activatesAt: now, now: now)
            recs.append(first)
            logger.notice("created first signing key", metadata: ["kid": "\(first.kid)", "alg": "\(first.algorithm.rawValue)"])
        }

        // The next key is replaced if it is not of the configured algorithm (it has not signed yet).
        for r in recs where r.activatesAt > now && r.algorithm != policy.algorithm {
            try await store.deleteSigningKey(kid: r.kid)
            recs.removeAll { $0.kid == r.kid }
            logger.notice("replaced unpublished next key with one of the configured algorithm", metadata: ["alg": "\(policy.algorithm.rawValue)"])
        }

        // Everything that activated before the current key retires when the current one took over.
        if let cur = Self.current(recs, now: now) {
            for i in recs.indices where recs[i].kid != cur.kid && recs[i].activatesAt <= now && recs[i].retiresAt == nil {
                recs[i].retiresAt = max(cur.activatesAt, recs[i].activatesAt)
                recs[i].expiresAt = recs[i].retiresAt! + policy.retainAfterRetire
                try await store.updateSigningKey(recs[i])
                logger.info("signing key retired", metadata: ["kid": "\(recs[i].kid)"])
            }
            // Always keep a next key published well before it signs.
            if !recs.contains(where: { $0.activatesAt > now }) {
                let at = max(cur.activatesAt + policy.rotationPeriod, now + max(policy.publishAhead, policy.minimumPublished))
                let next = try await createKey(activatesAt: at, now: now)
                logger.info("published next signing key", metadata: ["kid": "\(next.kid)", "activates": "\(at)"])
            }
        }
    }

    private func createKey(activatesAt: Date, now: Date) async throws -> SigningKeyRecord {
        let key = try SigningKey.generate(policy.algorithm, random: random)
        let record = SigningKeyRecord(kid: key.kid, algorithm: key.algorithm, sealedPrivateKey: try sealer.seal(key.privateDER),
                                      publicJWK: key.publicKey.jwkJSON, createdAt: now, activatesAt: activatesAt)
        try await store.insertSigningKey(record)
        snapshot.read { $0.privateKeys[key.kid] = key }  // reload() need not unseal it again
        return record
    }
}

public enum KeyManagerError: Error, CustomStringConvertible {
    case noSigningKey
    public var description: String { "no signing key is active" }
}

/// The key manager's only copy of the key state: replaced as a whole by `KeyManager.reload()`
/// (a key it just created is added at once), read by request handlers without an actor hop.
final class KeySnapshot: @unchecked Sendable {
    struct State {
        var records: [SigningKeyRecord] = []
        var privateKeys: [String: SigningKey] = [:]
        var publicKeys: [String: VerificationKey] = [:]
        var cachedJWKS: (json: String, validUntil: Date)?
        var cachedAlgorithms: (algorithms: [SigningAlgorithm], validUntil: Date)?
    }
    private let lock = NSLock()
    private var state = State()

    func replace(records: [SigningKeyRecord], privateKeys: [String: SigningKey], publicKeys: [String: VerificationKey]) {
        lock.lock()
        state = State(records: records, privateKeys: privateKeys, publicKeys: publicKeys)
        lock.unlock()
    }

    func read<R>(_ body: (inout State) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }
}
