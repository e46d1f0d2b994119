import Foundation
import Logging

/// First run: with no admin, a single-use, expiring setup link lets the operator choose
/// the first admin's password. There are no default passwords.
public struct SetupService: Sendable {
    let store: any Storage
    let hasher: any PasswordHasher
    let passwords: PasswordPolicy
    let clock: any Clock
    let random: any RandomSource
    let auditor: Auditor
    public let linkLifetime: TimeInterval

    public init(store: any Storage, hasher: any PasswordHasher, passwords: PasswordPolicy, linkLifetime: TimeInterval,
                clock: any Clock, random: any RandomSource, logger: Logger) {
        self.store = store; self.hasher = hasher; self.passwords = passwords; self.linkLifetime = linkLifetime
        self.clock = clock; self.random = random; self.auditor = Auditor(store: store, clock: clock, logger: logger)
    }

    /// A new setup token when no admin exists (nil otherwise). The caller prints the link.
    public func issueTokenIfNeeded() async throws -> String? {
        guard try await !store.adminExists() else { return nil }
        let token = random.token(byteCount: 32)
        let now = clock.now()
        try await store.createSetupToken(SetupToken(hash: Secrets.sha256Hex(token), createdAt: now, expiresAt: now + linkLifetime))
        await auditor.record("setup.link", actor: "system", details: ["expires": "\(Int((now + linkLifetime).timeIntervalSince1970))"])
        return token
    }

    /// Whether the token can still be used (for showing the form or a friendly "expired" page).
    public func tokenIsUsable(_ token: String) async throws -> Bool {
        guard token.utf8.count == 43, let t = try await store.setupToken(hash: Secrets.sha256Hex(token)) else { return false }
        return t.usedAt == nil && t.expiresAt > clock.now()
    }

    public enum Outcome: Sendable, Equatable { case created(User), invalidToken, adminExists, rejected(String) }

    public func complete(token: String, username rawUsername: String, password: String, confirmation: String,
                         remoteAddress: String) async throws -> Outcome {
        let username = Usernames.canonical(rawUsername)
        guard Usernames.isValidLocal(username) else {
            return .rejected("The username may use letters, digits, '.', '_', '-' and '@' (at most 64).")
        }
        if let problem = passwords.problem(with: password) { return .rejected(problem) }
        guard password == confirmation else { return .rejected("The two passwords differ.") }
        guard token.utf8.count == 43 else { return .invalidToken }
        let now = clock.now()
        let admin = User(id: random.uuid(), username: username, displayName: username, isAdmin: true,
                         passwordHash: try await hasher.hash(password), createdAt: now)
        switch try await store.completeSetup(hash: Secrets.sha256Hex(token), now: now, admin: admin) {
        case .created:
            await auditor.record("setup.complete", actor: username, subject: admin.id, remoteAddress: remoteAddress)
            return .created(admin)
        case .invalidToken:
            await auditor.record("setup.complete", actor: username, remoteAddress: remoteAddress, success: false, details: ["reason": "invalid link"])
            return .invalidToken
        case .adminExists:
            return .adminExists
        }
    }
}
