import Foundation

/// Where changes to what a credential check reads (credentials, robots, users) are followed: a number
/// that moves with every change anywhere — this replica, another one, the CLI. nil when changes cannot
/// be followed right now (PostgreSQL's LISTEN connection is down): then nothing is served from memory.
public protocol CredentialChanges: Sendable {
    func credentialGeneration() async -> Int?
}

/// Verified credentials, kept in memory per replica so the TokenReview webhook does not ask the
/// database for each review: keyed by credential id and the presented secret's hash, valid for one
/// change generation and at most `ttl` (a backstop for what no change reports: a directory person
/// disabled in LDAP), never past the credential's (or a rotated-out secret's) own end.
public typealias CredentialCache = GenerationCache<CredentialCheck>

/// Answers kept in memory for one change generation (see `CredentialChanges`) and at most `ttl`.
public final class GenerationCache<Value: Sendable>: @unchecked Sendable {
    struct Entry {
        let principal: Value
        let until: Date
        let generation: Int
    }

    public let ttl: TimeInterval
    let maxEntries: Int
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var generation = Int.min

    public init(ttl: TimeInterval, maxEntries: Int = 50_000) {
        self.ttl = ttl; self.maxEntries = maxEntries
    }

    public var enabled: Bool { ttl > 0 }

    /// The principal cached for `key` in `generation` and still within its time; a new generation empties the cache.
    public func lookup(_ key: String, generation current: Int, now: Date) -> Value? {
        lock.withLock {
            if current != generation {
                entries.removeAll(keepingCapacity: true)
                generation = current
                return nil
            }
            guard let e = entries[key] else { return nil }
            guard e.until > now else { entries[key] = nil; return nil }
            return e.principal
        }
    }

    /// Keeps a verified principal, read in `generation` (a change since then makes it worthless).
    public func store(_ key: String, _ principal: Value, generation read: Int, until: Date) {
        lock.withLock {
            // Only into the generation the lookup before it saw: a change meanwhile makes this answer stale.
            guard read == generation else { return }
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(principal: principal, until: until, generation: read)
        }
    }

    /// Drops everything (changes cannot be followed, or the caller knows better).
    public func clear() {
        lock.withLock { entries.removeAll(keepingCapacity: true); generation = Int.min }
    }

    public var count: Int { lock.withLock { entries.count } }
}
