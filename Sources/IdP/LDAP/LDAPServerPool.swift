import CLDAP
import Foundation
import Logging

/// The configured servers in order, their pooled connections, and which of them recently failed.
/// Its methods block and are meant for `BlockingThreadPool` threads; state is behind a lock.
final class LDAPServerPool: @unchecked Sendable {
    private struct Server {
        let url: String
        var failedUntil: Date?
        /// Connections bound as the service account (or anonymous), ready to search.
        var service: [LDAPConnection] = []
        /// Connections used for users' binds (whoever bound last).
        var binders: [LDAPConnection] = []
    }

    private let lock = NSLock()
    private var servers: [Server]
    private let urls: [String]
    private let settings: LDAPConnectionSettings
    private let bindDN: String?
    private let bindPassword: String?
    private let gssapi: Bool
    private let poolSize: Int
    private let retryAfter: TimeInterval
    private let logger: Logger

    init(config: LDAPConfiguration, logger: Logger) {
        servers = config.urls.map { Server(url: $0) }
        urls = config.urls
        settings = LDAPConnectionSettings(startTLS: config.startTLS, caFile: config.caFile, insecureSkipVerify: config.insecureSkipVerify,
                                          connectTimeout: config.connectTimeout, operationTimeout: config.operationTimeout)
        bindDN = config.bindDN
        bindPassword = config.bindPassword
        gssapi = config.bindMechanism == .gssapi
        poolSize = config.poolSize
        retryAfter = config.retryAfter
        self.logger = logger
    }

    /// What one directory operation may do on the server it was given.
    final class Session {
        fileprivate let pool: LDAPServerPool
        fileprivate let index: Int
        fileprivate var service: LDAPConnection
        fileprivate var binder: LDAPConnection?
        var url: String { service.url }

        fileprivate init(pool: LDAPServerPool, index: Int, service: LDAPConnection) {
            self.pool = pool; self.index = index; self.service = service
        }

        func search(base: String, scope: LDAPConfiguration.Scope, filter: String, attributes: [String], sizeLimit: Int = 0) throws -> [LDAPEntry] {
            try service.search(base: base, scope: scope, filter: filter, attributes: attributes, sizeLimit: sizeLimit)
        }

        /// Binds as `dn` on a connection of the same server; returns the result code.
        func bind(dn: String, password: String) throws -> Int32 {
            if binder == nil { binder = try pool.checkout(index, kind: .binder).connection }
            do {
                return try binder!.bind(dn: dn, password: password)
            } catch let e as LDAPError where e.isServerFailure {
                // A pooled connection may have gone stale; one fresh try before giving up on the server.
                binder = try pool.open(index, kind: .binder)
                return try binder!.bind(dn: dn, password: password)
            }
        }
    }

    private enum Kind { case service, binder }

    /// Runs `body` against the first server that works, in the configured order, skipping servers
    /// that failed within `retryAfter` (unless every server did). Blocks.
    func withSession<T>(_ body: (Session) throws -> T) throws -> T {
        var failures: [String] = []
        for i in candidates() {
            var attempt = 0
            while attempt < 2 {
                attempt += 1
                let session: Session
                let pooled: Bool
                do {
                    let c = try checkout(i, kind: .service, fresh: attempt > 1)
                    session = Session(pool: self, index: i, service: c.connection)
                    pooled = c.pooled
                } catch let e as LDAPError {
                    failures.append(e.description)
                    break
                }
                do {
                    let result = try body(session)
                    checkin(session)
                    markHealthy(i)
                    return result
                } catch let e as LDAPError where e.isServerFailure {
                    session.service.close(); session.binder?.close()
                    failures.append(e.description)
                    // A stale pooled connection gets one fresh retry; a fresh one failing means the server is down.
                    if !pooled { break }
                } catch {
                    checkin(session)
                    throw error
                }
            }
            markFailed(i)
        }
        throw AuthenticatorUnavailable("no directory server answered: " + failures.joined(separator: "; "))
    }

    /// True while every server failed its last attempt (for /readyz; never blocks).
    var allFailed: Bool {
        lock.lock(); defer { lock.unlock() }
        return !servers.isEmpty && servers.allSatisfy { $0.failedUntil != nil }
    }

    private func candidates() -> [Int] {
        let now = Date()
        lock.lock(); defer { lock.unlock() }
        let healthy = servers.indices.filter { (servers[$0].failedUntil ?? .distantPast) <= now }
        if !healthy.isEmpty { return healthy }
        // Everything failed recently: try them all anyway, the longest-failed first.
        return servers.indices.sorted { (servers[$0].failedUntil ?? .distantPast) < (servers[$1].failedUntil ?? .distantPast) }
    }

    private func markFailed(_ i: Int) {
        lock.lock()
        let url = servers[i].url
        let wasHealthy = servers[i].failedUntil == nil
        servers[i].failedUntil = Date() + retryAfter
        let stale = servers[i].service + servers[i].binders
        servers[i].service = []; servers[i].binders = []
        lock.unlock()
        for c in stale { c.close() }
        if wasHealthy { logger.warning("LDAP server failed; skipping it for a while", metadata: ["url": "\(url)", "retry_after_s": "\(Int(retryAfter))"]) }
    }

    private func markHealthy(_ i: Int) {
        lock.lock()
        let was = servers[i].failedUntil
        servers[i].failedUntil = nil
        let url = servers[i].url
        lock.unlock()
        if was != nil { logger.notice("LDAP server answers again", metadata: ["url": "\(url)"]) }
    }

    private func checkout(_ i: Int, kind: Kind, fresh: Bool = false) throws -> (connection: LDAPConnection, pooled: Bool) {
        if !fresh {
            lock.lock()
            let c: LDAPConnection? = kind == .service ? servers[i].service.popLast() : servers[i].binders.popLast()
            lock.unlock()
            if let c { return (c, true) }
        }
        return (try open(i, kind: kind), false)
    }

    private func open(_ i: Int, kind: Kind) throws -> LDAPConnection {
        let c = try LDAPConnection(url: urls[i], settings: settings)
        if kind == .service && gssapi {
            let rc = try c.bindGSSAPI()
            guard rc == 0 else {
                c.close()
                throw LDAPError(code: -1, context: "SASL/GSSAPI service bind on \(urls[i]) (ticket cache: \(ProcessInfo.processInfo.environment["KRB5CCNAME"] ?? "default"))",
                                message: String(cString: ldap_err2string(rc)))
            }
            return c
        }
        if kind == .service, let dn = bindDN {
            // An empty password would be an unauthenticated bind that "succeeds" (RFC 4513 §5.1.2).
            guard let password = bindPassword, !password.isEmpty else {
                c.close()
                throw LDAPError(code: -1, context: "service bind as \(dn)", message: "the bind password is empty")
            }
            let rc = try c.bind(dn: dn, password: password)
            guard rc == 0 else {
                c.close()
                // A refused service bind is a configuration problem, but it leaves the server unusable all the same.
                throw LDAPError(code: -1, context: "service bind as \(dn) on \(urls[i])", message: String(cString: ldap_err2string(rc)))
            }
        }
        return c
    }

    private func checkin(_ s: Session) {
        lock.lock()
        var extra: [LDAPConnection] = []
        if servers[s.index].service.count < poolSize { servers[s.index].service.append(s.service) } else { extra.append(s.service) }
        if let b = s.binder {
            if servers[s.index].binders.count < poolSize { servers[s.index].binders.append(b) } else { extra.append(b) }
        }
        lock.unlock()
        for c in extra { c.close() }
    }
}
