import Foundation
import Logging

/// SPNEGO logins (RFC 4559): accepts an `Authorization: Negotiate` token with the GSSAPI
/// acceptor, maps the Kerberos principal to a username, and looks the account up in the
/// directory it lives in (LDAP when configured, local users otherwise, in the password chain's
/// order). As an `Authenticator` (method "kerberos") it has no passwords; it re-validates
/// sessions and refresh families through the directory the account came from.
///
/// Throttling: a token that fails to verify counts against the client address like a wrong
/// password, and a locked-out address cannot log in with a ticket either. A valid ticket for an
/// unknown, disabled or foreign-realm principal is audited but not counted (the browser sends it
/// on every visit). Per-user lockouts from password guessing do not block a ticket: the KDC
/// enforced its own policy when it issued it.
public final class KerberosAuthenticator: Authenticator, @unchecked Sendable {
    public let method = "kerberos"

    public enum Outcome: Sendable, Equatable {
        case success(Identity, principal: String, mutualToken: String?)
        /// Not a well-formed Negotiate header (bad base64, empty, oversized): nothing was checked or written.
        case malformed(String)
        /// The token did not verify (tampered, replayed, expired, another service, NTLM): audited, counted.
        case rejected(String)
        case realmNotAllowed(principal: String, realm: String)
        /// The principal maps to no usable username, or to no account.
        case unknownPrincipal(principal: String, username: String?)
        case disabled(principal: String, username: String)
        case lockedOut(until: Date)
        case unavailable(String)
    }

    /// The longest `Authorization` value accepted. Windows' MaxTokenSize is 48 000 bytes (64 000 in base64).
    public static let maxHeaderBytes = 64 * 1024

    let config: KerberosConfiguration
    let acceptor: GSSAcceptor
    let mapper: PrincipalMapper
    let directories: [any AccountLookup]
    let threads: BlockingThreadPool
    let store: any Storage
    let policy: LoginPolicy
    let auditor: Auditor
    let clock: any Clock
    let logger: Logger

    /// `directories`: where mapped usernames are looked up, in order (the first that knows the name answers).
    public init(config: KerberosConfiguration, acceptor: GSSAcceptor, directories: [any AccountLookup], store: any Storage,
                policy: LoginPolicy, clock: any Clock, logger: Logger) {
        self.config = config; self.acceptor = acceptor; self.directories = directories
        self.mapper = PrincipalMapper(realms: config.realms, rules: config.mappings)
        self.threads = BlockingThreadPool(name: "gssapi", threads: config.threads, maxQueued: config.threads * 32)
        self.store = store; self.policy = policy; self.clock = clock; self.logger = logger
        self.auditor = Auditor(store: store, clock: clock, logger: logger)
    }

    /// Kerberos has no passwords: the password chain passes over it.
    public func authenticate(username: String, password: String) async throws -> AuthenticationResult { .invalidCredentials }

    public func revalidate(subject: String) async throws -> Identity? {
        var unavailable: AuthenticatorUnavailable?
        for d in directories {
            do {
                if let identity = try await d.revalidate(subject: subject) { return identity }
            } catch let e as AuthenticatorUnavailable {
                unavailable = e
            }
        }
        if let unavailable { throw unavailable }
        return nil
    }

    /// The token of an `Authorization: Negotiate <base64>` value, or why it is malformed.
    public static func token(fromAuthorization value: String) -> Result<[UInt8], NegotiateHeaderError> {
        guard value.utf8.count <= maxHeaderBytes else { return .failure(.init("the Authorization header is too large")) }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "negotiate" else { return .failure(.init("not a Negotiate authorization")) }
        let b64 = parts[1].trimmingCharacters(in: .whitespaces)
        guard !b64.isEmpty, b64.utf8.allSatisfy({ Self.isBase64($0) }), let data = Data(base64Encoded: b64), !data.isEmpty else {
            return .failure(.init("the Negotiate token is not base64"))
        }
        return .success(Array(data))
    }

    public struct NegotiateHeaderError: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    static func isBase64(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2b || c == 0x2f || c == 0x3d
    }

    /// NTLM messages start with "NTLMSSP\0"; inside SPNEGO they appear as the mechanism token.
    static func containsNTLMSSP(_ token: [UInt8]) -> Bool {
        let sig: [UInt8] = Array("NTLMSSP".utf8) + [0]
        guard token.count >= sig.count else { return false }
        for i in 0...(token.count - sig.count) where token[i] == 0x4e && Array(token[i..<(i + sig.count)]) == sig { return true }
        return false
    }

    /// One Negotiate login attempt, from the raw `Authorization` header value.
    public func login(authorization: String, remoteAddress: String) async throws -> Outcome {
        let token: [UInt8]
        switch Self.token(fromAuthorization: authorization) {
        case .failure(let e): return .malformed(e.description)
        case .success(let t): token = t
        }
        let now = clock.now()
        // Its own counter: a password spray from a shared address (an office NAT) must not stop
        // ticket logins from there, nor bad tickets stop password logins.
        let addrKey = "krb:" + LoginThrottle.addressUnit(remoteAddress)
        if let s = try await store.throttleState(key: addrKey), let until = s.lockedUntil, until > now {
            await auditor.record("login.failure", remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "locked out", "throttle": "address", "method": method])
            return .lockedOut(until: until)
        }

        let accepted: GSSAcceptor.Accepted
        if Self.containsNTLMSSP(token) {
            accepted = .notKerberos
        } else {
            do {
                let acceptor = self.acceptor
                accepted = try await threads.run { acceptor.accept(token) }
            } catch let e as BlockingThreadPool.Saturated {
                return .unavailable(e.description)
            }
        }

        let principal: String, mutual: [UInt8]
        switch accepted {
        case .principal(let p, let m):
            principal = p; mutual = m
        case .notKerberos, .rejected:
            let reason: String
            if case .rejected(let why) = accepted { reason = why } else { reason = "not a Kerberos token (NTLM is not accepted)" }
            logger.notice("Negotiate token refused", metadata: ["reason": "\(reason)", "remote": "\(remoteAddress)"])
            let a = try await store.recordFailure(key: addrKey, now: now, window: policy.failureWindow,
                                                  maxFailures: policy.maxFailuresPerAddress, lockout: policy.lockout)
            await auditor.record("login.failure", remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "invalid Negotiate token", "detail": String(reason.prefix(200)), "method": method])
            if let until = a.lockedUntil, until > now { return .lockedOut(until: until) }
            return .rejected(reason)
        }
        let mutualToken = mutual.isEmpty ? nil : Data(mutual).base64EncodedString()

        let username: String
        switch mapper.map(principal) {
        case .realmNotAllowed(let realm):
            await auditor.record("login.failure", actor: principal, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "realm not allowed", "principal": principal, "method": method])
            return .realmNotAllowed(principal: principal, realm: realm)
        case .unmapped:
            await auditor.record("login.failure", actor: principal, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "principal not mapped", "principal": principal, "method": method])
            return .unknownPrincipal(principal: principal, username: nil)
        case .username(let u):
            username = u
        }

        var unavailable: String?
        var disabled = false
        var found: Identity?
        for d in directories {
            do {
                switch try await d.lookup(username: username) {
                case .success(let identity): found = identity
                case .disabled: disabled = true
                case .refused: disabled = true
                case .invalidCredentials: continue
                }
                break
            } catch let e as AuthenticatorUnavailable {
                unavailable = e.description
                logger.error("directory unavailable for a Kerberos login", metadata: ["method": "\(d.method)", "error": "\(e)"])
            }
        }
        guard let identity = found else {
            if disabled {
                await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                     details: ["reason": "account disabled", "principal": principal, "method": method])
                return .disabled(principal: principal, username: username)
            }
            if let unavailable {
                await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                     details: ["reason": "directory unavailable", "principal": principal, "method": method])
                return .unavailable(unavailable)
            }
            await auditor.record("login.failure", actor: username, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "unknown user", "principal": principal, "method": method])
            return .unknownPrincipal(principal: principal, username: username)
        }
        await auditor.record("login.success", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                             details: ["method": method, "principal": principal])
        return .success(identity, principal: principal, mutualToken: mutualToken)
    }
}
