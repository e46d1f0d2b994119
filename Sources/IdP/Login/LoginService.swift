import Foundation
import Logging

public enum LoginOutcome: Sendable, Equatable {
    case success(Identity, method: String)
    /// Unknown user, wrong password, or an empty one: one answer for all.
    case invalidCredentials
    case lockedOut(until: Date)
    /// The password was right but this account may not sign in here (shown as is).
    case refused(String)
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

    public var throttle: LoginThrottle { LoginThrottle(store: store, policy: policy) }

    public func login(username rawUsername: String, password: String, remoteAddress: String) async throws -> LoginOutcome {
        let username = Usernames.canonical(rawUsername)
        let now = clock.now()
        // Names that can never sign in (control characters, too long, the clients' throttle
        // namespace) are refused before any storage is touched: they build no throttle key or audit row.
        guard !username.isEmpty, username.utf8.count <= 256, !Identifiers.hasControlCharacters(username),
              !username.hasPrefix(LoginThrottle.clientPrefix) else {
            return .invalidCredentials
        }
        let throttle = self.throttle
        let keys = try await throttle.keys(account: username, remoteAddress: remoteAddress, now: now)
        if let wait = try await throttle.waiting(keys, now: now) {
            await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "throttled", "throttle": wait.key, "familiar": keys.familiar ? "true" : "false"])
            return .lockedOut(until: wait.until)
        }

        // An empty password would be an unauthenticated bind to a directory (RFC 4513 §5.1.2): refuse before anything.
        let blank = password.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        var outcome: LoginOutcome = .invalidCredentials
        var failureReason = blank ? "empty password" : "invalid credentials"
        // (The username was checked above: not empty, at most 256 bytes, no control characters.)
        if !blank && password.utf8.count <= 1024 && !password.contains("\u{0}") {
            var unavailable: String?
            chain: for a in authenticators {
                do {
                    switch try await a.authenticate(username: username, password: password) {
                    case .success(let identity):
                        outcome = .success(identity, method: a.method)
                        break chain
                    case .disabled:
                        failureReason = "account disabled"
                        break chain
                    case .refused(let why):
                        failureReason = "refused: " + why
                        outcome = .refused(why)
                        break chain
                    case .invalidCredentials:
                        continue
                    }
                } catch let e as AuthenticatorUnavailable {
                    unavailable = e.description
                    logger.error("authenticator unavailable", metadata: ["method": "\(a.method)", "error": "\(e)"])
                }
            }
            if case .invalidCredentials = outcome, let unavailable, failureReason == "invalid credentials" {
                await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                     details: ["reason": "directory unavailable"])
                return .unavailable(unavailable)
            }
        }

        switch outcome {
        case .success(let identity, let method):
            try await throttle.succeeded(keys, account: username, now: now)
            await auditor.record("login.success", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                                 details: ["method": method])
            return outcome
        case .refused:
            // The password was right: nothing to throttle, but it is worth an audit event.
            await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": failureReason, "method": "password"])
            return outcome
        default:
            let until = try await throttle.failed(keys, now: now)
            await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": failureReason, "method": "password"])
            if let until { return .lockedOut(until: until) }
            return .invalidCredentials
        }
    }

    /// A sign-in that did not go through `login` (setup, Kerberos) makes the address familiar too.
    public func remember(account: String, remoteAddress: String) async {
        try? await store.rememberFamiliar(account: Usernames.canonical(account), address: LoginThrottle.addressUnit(remoteAddress), now: clock.now())
    }

    // MARK: Browser sessions

    /// Starts a browser session; returns the cookie value (only its hash is stored). The session
    /// gets its own public id (`sid`), unrelated to the cookie.
    /// `sid`: the id of the session this one continues (the same person signing in again in the same
    /// browser keeps the `sid` applications know, so a later sign-out still reaches them).
    /// `amr`: the RFC 8176 methods of this login; `factorAt`: when it confirmed a second factor (now, when it did).
    public func startSession(identity: Identity, method: String, remoteAddress: String = "", userAgent: String = "",
                             sid: String? = nil, amr: [String] = [], factorConfirmed: Bool = false) async throws -> (cookie: String, session: LoginSession) {
        let value = random.token(byteCount: 32)
        let now = clock.now()
        let session = LoginSession(hash: Secrets.sha256Hex(value), sid: sid ?? random.identifier(), userID: identity.subject, authTime: now,
                                   authMethod: method, createdAt: now, expiresAt: now + tokens.sessionTTL, lastSeenAt: now,
                                   address: Identifiers.printable(remoteAddress), userAgent: Identifiers.printable(String(userAgent.prefix(512))),
                                   amr: amr, factorAt: factorConfirmed ? now : nil)
        try await store.createSession(session)
        return (value, session)
    }

    /// The live session behind a cookie value, with the current identity; nil when past its
    /// absolute end or idle timeout, unknown, or when the account was disabled, deleted or locked
    /// in the directory since. Each use counts as activity (stamped at most every minute or so).
    public func session(cookie: String) async throws -> (LoginSession, Identity)? {
        guard let s = try await storedSession(cookie: cookie) else { return nil }
        return try await current(s)
    }

    /// A stored session, when it is live and its account still good, with the current identity
    /// (see `session(cookie:)`), for a caller that already read the row.
    public func current(_ stored: LoginSession) async throws -> (LoginSession, Identity)? {
        let now = clock.now()
        var s = stored
        guard isLive(s, now: now) else { return nil }
        let authenticator = authenticators.first { $0.method == s.authMethod } ?? authenticators.first
        guard let identity = try await authenticator?.revalidate(subject: s.userID) else { return nil }
        if now.timeIntervalSince(s.lastSeenAt) >= min(60, tokens.sessionIdleTimeout / 4) {
            // Activity is bookkeeping: a failed stamp does not fail the request.
            do { try await store.touchSession(hash: s.hash, now: now); s.lastSeenAt = now } catch {
                logger.warning("could not record session activity", metadata: ["error": "\(error)"])
            }
        }
        return (s, identity)
    }

    /// The current identity of a person who signed in with `method` (the account may have been disabled,
    /// deleted or locked in the directory since): the second step of a sign-in asks again.
    public func identity(subject: String, method: String) async throws -> Identity? {
        let authenticator = authenticators.first { $0.method == method } ?? authenticators.first
        return try await authenticator?.revalidate(subject: subject)
    }

    /// Who a subject is, asking each authenticator in turn (a passkey sign-in names nobody's method):
    /// the identity and the method of the authenticator that knows it.
    public func locate(subject: String) async throws -> (Identity, String)? {
        for a in authenticators {
            if let identity = try await a.revalidate(subject: subject) { return (identity, a.method) }
        }
        return nil
    }

    /// The stored session behind a cookie, live or not, without asking any directory: what signing
    /// out ends (it must work when the session has idled out, or the directory is down).
    public func storedSession(cookie: String) async throws -> LoginSession? {
        guard cookie.utf8.count == 43 else { return nil }
        return try await store.session(hash: Secrets.sha256Hex(cookie))
    }

    /// A person's browser sessions within both their absolute lifetime and their idle timeout, newest first.
    public func liveSessions(userID: String) async throws -> [LoginSession] {
        let now = clock.now()
        return try await store.sessions(userID: userID, now: now).filter { isLive($0, now: now) }
    }

    /// Within both the absolute lifetime and the idle timeout.
    public func isLive(_ s: LoginSession, now: Date) -> Bool {
        s.expiresAt > now && s.lastSeenAt + tokens.sessionIdleTimeout > now
    }

    /// When an idle session ends if nothing happens.
    public func idleEnd(_ s: LoginSession) -> Date { min(s.expiresAt, s.lastSeenAt + tokens.sessionIdleTimeout) }
}
