import Foundation
import Logging

public struct LoginPolicy: Sendable {
    /// Failures per username (and, separately, per client address) before a lockout.
    public var maxFailuresPerUser: Int = 5
    public var maxFailuresPerAddress: Int = 20
    public var failureWindow: TimeInterval = 15 * 60
    public var lockout: TimeInterval = 15 * 60
    public init() {}
}

public enum LoginOutcome: Sendable, Equatable {
    case success(Identity, method: String)
    /// Unknown user, wrong password, or an empty one: one answer for all.
    case invalidCredentials
    case lockedOut(until: Date)
    /// Every authenticator that could answer was unreachable.
    case unavailable(String)
}

/// Password logins: throttling, the authenticator chain, audit, and browser sessions.
public struct LoginService: Sendable {
    let store: any Storage
    let authenticators: [any Authenticator]
    let policy: LoginPolicy
    let tokens: TokenPolicy
    let auditor: Auditor
    let clock: any Clock
    let random: any RandomSource
    let logger: Logger

    public init(store: any Storage, authenticators: [any Authenticator], policy: LoginPolicy, tokens: TokenPolicy,
                clock: any Clock, random: any RandomSource, logger: Logger) {
        self.store = store; self.authenticators = authenticators; self.policy = policy; self.tokens = tokens
        self.auditor = Auditor(store: store, clock: clock, logger: logger)
        self.clock = clock; self.random = random; self.logger = logger
    }

    public func login(username rawUsername: String, password: String, remoteAddress: String) async throws -> LoginOutcome {
        let username = Usernames.canonical(rawUsername)
        let now = clock.now()
        let userKey = "user:" + username
        let addrKey = "addr:" + remoteAddress

        for key in [userKey, addrKey] {
            if let s = try await store.throttleState(key: key), let until = s.lockedUntil, until > now {
                await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                     details: ["reason": "locked out", "throttle": key.hasPrefix("user:") ? "user" : "address"])
                return .lockedOut(until: until)
            }
        }

        // An empty password would be an unauthenticated bind to a directory (RFC 4513 §5.1.2): refuse before anything.
        let blank = password.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        var outcome: LoginOutcome = .invalidCredentials
        var failureReason = blank ? "empty password" : "invalid credentials"
        if !username.isEmpty && !blank && password.utf8.count <= 1024 && username.utf8.count <= 256 && !username.contains("\u{0}") {
            var unavailable: String?
            for a in authenticators {
                do {
                    switch try await a.authenticate(username: username, password: password) {
                    case .success(let identity):
                        outcome = .success(identity, method: a.method)
                    case .disabled:
                        failureReason = "account disabled"
                    case .invalidCredentials:
                        continue
                    }
                    break
                } catch let e as AuthenticatorUnavailable {
                    unavailable = e.description
                    logger.error("authenticator unavailable", metadata: ["method": "\(a.method)", "error": "\(e)"])
                }
                if case .success = outcome { break }
                if failureReason == "account disabled" { break }
            }
            if case .invalidCredentials = outcome, let unavailable, failureReason == "invalid credentials" {
                await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                     details: ["reason": "directory unavailable"])
                return .unavailable(unavailable)
            }
        }

        switch outcome {
        case .success(let identity, let method):
            try await store.clearThrottle(key: userKey)
            await auditor.record("login.success", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                                 details: ["method": method])
            return outcome
        default:
            let u = try await store.recordFailure(key: userKey, now: now, window: policy.failureWindow,
                                                  maxFailures: policy.maxFailuresPerUser, lockout: policy.lockout)
            let a = try await store.recordFailure(key: addrKey, now: now, window: policy.failureWindow,
                                                  maxFailures: policy.maxFailuresPerAddress, lockout: policy.lockout)
            await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": failureReason, "method": "password"])
            if let until = [u.lockedUntil, a.lockedUntil].compactMap({ $0 }).filter({ $0 > now }).max() {
                return .lockedOut(until: until)
            }
            return .invalidCredentials
        }
    }

    // MARK: Browser sessions

    /// Starts a browser session; returns the cookie value (only its hash is stored).
    public func startSession(identity: Identity, method: String) async throws -> (cookie: String, session: LoginSession) {
        let value = random.token(byteCount: 32)
        let now = clock.now()
        let session = LoginSession(hash: Secrets.sha256Hex(value), userID: identity.subject, authTime: now, authMethod: method,
                                   createdAt: now, expiresAt: now + tokens.sessionTTL)
        try await store.createSession(session)
        return (value, session)
    }

    /// The live session behind a cookie value, with the current identity; nil when expired,
    /// unknown, or when the account was disabled since.
    public func session(cookie: String) async throws -> (LoginSession, Identity)? {
        guard cookie.utf8.count == 43 else { return nil }
        guard let s = try await store.session(hash: Secrets.sha256Hex(cookie)), s.expiresAt > clock.now() else { return nil }
        let authenticator = authenticators.first { $0.method == s.authMethod } ?? authenticators.first
        guard let identity = try await authenticator?.revalidate(subject: s.userID) else { return nil }
        return (s, identity)
    }

    public func endSession(cookie: String) async throws {
        guard cookie.utf8.count == 43 else { return }
        try await store.deleteSession(hash: Secrets.sha256Hex(cookie))
    }
}
