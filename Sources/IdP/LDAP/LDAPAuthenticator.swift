import Foundation
import Logging

/// Directory logins: find the user with the service bind, bind as the entry found with the
/// password exactly as typed, then read the identity and groups. Every refresh and session check
/// re-reads the user (`revalidate`), so a deleted or disabled entry stops working within
/// `cacheLifetime` (never longer than the id_token lifetime).
public final class LDAPAuthenticator: Authenticator, @unchecked Sendable {
    public let method = "ldap"
    let config: LDAPConfiguration
    let servers: LDAPServerPool
    let threads: BlockingThreadPool
    let clock: any Clock
    let logger: Logger

    /// True when a local account has this (canonical) name. A directory account never signs in
    /// under a name a local account holds: both would map to one Kubernetes user (README:
    /// "Local and directory users together").
    let localAccountExists: (@Sendable (String) async throws -> Bool)?
    static let shadowedReason = "This directory account has the same name as a local account of the portal, so it cannot sign in here. Ask an administrator to rename one of them."

    private let cacheLock = NSLock()
    private var cache: [String: (identity: Identity?, expires: Date)] = [:]

    /// `cacheLifetime` is clamped to `maxCacheLifetime` (pass the id_token lifetime).
    /// How long a directory answer is reused (what `ldap.cache_lifetime` allows).
    public var cacheLifetime: TimeInterval { config.cacheLifetime }

    public init(config: LDAPConfiguration, maxCacheLifetime: TimeInterval, clock: any Clock, logger: Logger,
                localAccountExists: (@Sendable (String) async throws -> Bool)? = nil) {
        self.localAccountExists = localAccountExists
        var config = config
        config.cacheLifetime = max(0, min(config.cacheLifetime, maxCacheLifetime))
        self.config = config
        self.clock = clock
        self.logger = logger
        servers = LDAPServerPool(config: config, logger: logger)
        threads = BlockingThreadPool(name: "ldap", threads: config.threads, maxQueued: config.threads * 32)
        // libldap writes to sockets the peer may have closed.
        signal(SIGPIPE, SIG_IGN)
        if config.insecureSkipVerify {
            logger.warning("ldap.insecure_skip_verify is on: the directory's TLS certificate is NOT verified, so passwords can be intercepted. Turn it off and set ldap.ca_file.")
        }
    }

    public func authenticate(username: String, password: String) async throws -> AuthenticationResult {
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines)
        // Also guarded by LoginService; repeated here because an empty password is an
        // unauthenticated bind that succeeds (RFC 4513 §5.1.2).
        guard !name.isEmpty, name.utf8.count <= 256, !name.contains("\u{0}"),
              !password.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, !password.contains("\u{0}"),
              password.utf8.count <= 1024 else {
            return .invalidCredentials
        }
        let result = try await onDirectory { [config, logger] session -> (AuthenticationResult, String?) in
            let filter = LDAPFilter.and(config.userSearch.filter, "(\(config.userSearch.usernameAttribute)=\(LDAPFilter.escape(name)))")
            let entries: [LDAPEntry]
            do {
                entries = try session.search(base: config.userSearch.baseDN, scope: config.userSearch.scope, filter: filter,
                                             attributes: Self.userAttributes(config), sizeLimit: 2)
            } catch let e as LDAPError where e.code == LDAPError.sizeLimitExceeded {
                entries = [LDAPEntry(dn: "", attributes: [:]), LDAPEntry(dn: "", attributes: [:])]
            }
            guard entries.count == 1, let entry = entries.first else {
                if entries.count > 1 {
                    logger.warning("LDAP login refused: the username matches more than one entry", metadata: ["username": "\(name)"])
                    return (.invalidCredentials, "ambiguous username")
                }
                return (.invalidCredentials, nil)
            }
            guard !entry.dn.isEmpty else { return (.invalidCredentials, nil) }
            let rc = try session.bind(dn: entry.dn, password: password)
            guard rc == 0 else {
                if rc != LDAPError.invalidCredentials {
                    logger.notice("LDAP bind refused", metadata: ["dn": "\(entry.dn)", "code": "\(rc)"])
                }
                return (.invalidCredentials, nil)
            }
            // Account state only after the password proved right: a wrong password learns nothing.
            if try Self.isDisabled(entry, config: config, session: session) { return (.disabled, nil) }
            guard let identity = try Self.identity(of: entry, config: config, session: session, logger: logger) else {
                return (.invalidCredentials, "no subject attribute")
            }
            return (.success(identity), nil)
        }
        if case .success(let identity) = result.0 {
            if try await isShadowed(identity) {
                logger.warning("directory login refused: a local account has the same name", metadata: ["username": "\(identity.username)"])
                return .refused(Self.shadowedReason)
            }
            remember(identity.subject, identity)
        }
        return result.0
    }

    /// False while no directory server answered the last attempt (readiness report).
    public var directoryReachable: Bool { !servers.allFailed }

    /// Whether a local account holds this directory identity's name (checked on every use, so a
    /// local account created later stops the directory one at its next refresh).
    func isShadowed(_ identity: Identity) async throws -> Bool {
        guard let localAccountExists else { return false }
        do { return try await localAccountExists(Usernames.canonical(identity.username)) } catch {
            throw AuthenticatorUnavailable("cannot check local account names: \(error)")
        }
    }

    public func revalidate(subject: String) async throws -> Identity? {
        let found = try await revalidateInDirectory(subject: subject)
        if let found, try await isShadowed(found) { return nil }
        return found
    }

    func revalidateInDirectory(subject: String) async throws -> Identity? {
        if let hit = cached(subject) { return hit.identity }
        let identity = try await onDirectory { [config, logger] session -> Identity? in
            guard let value = Self.subjectFilterValue(subject) else { return nil }
            let filter = LDAPFilter.and(config.userSearch.filter, "(\(config.attributes.subject)=\(value))")
            let entries: [LDAPEntry]
            do {
                entries = try session.search(base: config.userSearch.baseDN, scope: config.userSearch.scope, filter: filter,
                                             attributes: Self.userAttributes(config), sizeLimit: 2)
            } catch let e as LDAPError where e.code == LDAPError.sizeLimitExceeded {
                return nil
            }
            guard entries.count == 1, let entry = entries.first else { return nil }
            if try Self.isDisabled(entry, config: config, session: session) { return nil }
            guard let identity = try Self.identity(of: entry, config: config, session: session, logger: logger),
                  identity.subject == subject else { return nil }
            return identity
        }
        remember(subject, identity)
        return identity
    }

    /// Runs blocking directory work on the LDAP threads, against the first server that answers.
    private func onDirectory<T: Sendable>(_ body: @escaping @Sendable (LDAPServerPool.Session) throws -> T) async throws -> T {
        let servers = self.servers
        do {
            return try await threads.run { try servers.withSession(body) }
        } catch let e as LDAPError {
            // Not a server failure (e.g. a filter the server refused): the directory cannot answer this.
            logger.error("LDAP operation failed", metadata: ["error": "\(e)"])
            throw AuthenticatorUnavailable(e.description)
        } catch let e as BlockingThreadPool.Saturated {
            throw AuthenticatorUnavailable(e.description)
        }
    }

    // MARK: Cache

    private func cached(_ subject: String) -> (identity: Identity?, expires: Date)? {
        guard config.cacheLifetime > 0 else { return nil }
        cacheLock.lock(); defer { cacheLock.unlock() }
        guard let hit = cache[subject], hit.expires > clock.now() else { return nil }
        return hit
    }

    private func remember(_ subject: String, _ identity: Identity?) {
        guard config.cacheLifetime > 0 else { return }
        let now = clock.now()
        cacheLock.lock(); defer { cacheLock.unlock() }
        if cache.count > 10_000 { cache = cache.filter { $0.value.expires > now } }
        cache[subject] = (identity, now + config.cacheLifetime)
    }

    // MARK: Reading entries

    static func userAttributes(_ c: LDAPConfiguration) -> [String] {
        var a = [c.attributes.subject, c.attributes.username, c.attributes.displayName, c.attributes.email]
        if c.groups.mode == .attribute { a.append(c.groups.memberOfAttribute) }
        if let d = c.accountState.disabledAttribute { a.append(d) }
        var seen = Set<String>()
        return a.filter { seen.insert($0.lowercased()).inserted }
    }

    /// The subject as stored in `sub`: the attribute's text, or `b64:` + base64url for binary values (AD's objectGUID).
    static func subjectString(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty else { return nil }
        if let s = String(validatingUTF8Bytes: bytes), s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) { return s }
        return "b64:" + Base64URL.encode(bytes)
    }

    /// The filter assertion value that finds `subject` again.
    static func subjectFilterValue(_ subject: String) -> String? {
        if subject.hasPrefix("b64:") {
            guard let bytes = Base64URL.decode(String(subject.dropFirst(4))) else { return nil }
            return bytes.map { String(format: "\\%02x", $0) }.joined()
        }
        return subject.isEmpty ? nil : LDAPFilter.escape(subject)
    }

    static func isDisabled(_ entry: LDAPEntry, config: LDAPConfiguration, session: LDAPServerPool.Session) throws -> Bool {
        let state = config.accountState
        if let attr = state.disabledAttribute {
            let values = entry.strings(attr)
            if let wanted = state.disabledValue {
                if values.contains(where: { $0.caseInsensitiveCompare(wanted) == .orderedSame }) { return true }
            } else if !entry.values(attr).isEmpty {
                return true
            }
        }
        if let active = state.activeFilter {
            let found = try session.search(base: entry.dn, scope: .base, filter: active, attributes: ["1.1"])
            if found.isEmpty { return true }
        }
        return false
    }

    static func identity(of entry: LDAPEntry, config: LDAPConfiguration, session: LDAPServerPool.Session, logger: Logger) throws -> Identity? {
        guard let raw = entry.values(config.attributes.subject).first, let subject = subjectString(raw) else {
            logger.error("LDAP entry has no subject attribute", metadata: ["dn": "\(entry.dn)", "attribute": "\(config.attributes.subject)"])
            return nil
        }
        guard var username = entry.first(config.attributes.username), !username.isEmpty else {
            logger.error("LDAP entry has no username attribute", metadata: ["dn": "\(entry.dn)", "attribute": "\(config.attributes.username)"])
            return nil
        }
        username = username.precomposedStringWithCanonicalMapping.trimmingCharacters(in: .whitespacesAndNewlines)
        if config.usernameCase == .lower { username = username.lowercased() }
        let email = entry.first(config.attributes.email) ?? ""
        let groups = try LDAPGroupResolver(config: config.groups, session: session).groups(of: entry, username: username)
        return Identity(subject: subject, username: username, displayName: entry.first(config.attributes.displayName) ?? username,
                        email: email, emailVerified: !email.isEmpty, groups: groups, isAdmin: false)
    }
}
