import Foundation

public struct PasswordPolicy: Sendable {
    public var minLength: Int
    public var maxBytes: Int
    public init(minLength: Int = 8, maxBytes: Int = 1024) { self.minLength = minLength; self.maxBytes = maxBytes }

    /// Why a new password is refused, or nil when it is acceptable.
    public func problem(with password: String) -> String? {
        if password.count < minLength { return "The password must be at least \(minLength) characters long." }
        if password.utf8.count > maxBytes { return "The password must be at most \(maxBytes) bytes long." }
        if password.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return "The password must not be blank." }
        return nil
    }
}

/// Local users: passwords checked against bcrypt hashes in storage.
public struct LocalAuthenticator: Authenticator {
    public static let methodName = "password"
    public let method = LocalAuthenticator.methodName
    let store: any UserStore
    let hasher: any PasswordHasher
    /// A real hash of a random password, checked when the user is unknown so that
    /// unknown users and wrong passwords take the same time.
    let dummyHash: String

    /// Local people as last read, for one change generation (any write to `users` moves it, on every
    /// replica): a refresh or a credential check then needs no database read to know they are still active.
    let identities: (cache: GenerationCache<Identity>, changes: any CredentialChanges)?

    public init(store: any UserStore, hasher: any PasswordHasher, dummyHash: String,
                identities: (cache: GenerationCache<Identity>, changes: any CredentialChanges)? = nil) {
        self.store = store; self.hasher = hasher; self.dummyHash = dummyHash; self.identities = identities
    }

    public func authenticate(username: String, password: String) async throws -> AuthenticationResult {
        guard let user = try await store.user(username: Usernames.canonical(username)), let hash = user.passwordHash else {
            _ = await hasher.verify(password, hash: dummyHash)
            return .invalidCredentials
        }
        guard await hasher.verify(password, hash: hash) else { return .invalidCredentials }
        if user.disabled { return .disabled }
        return .success(Identity(user: user))
    }

    public func revalidate(subject: String) async throws -> Identity? {
        guard let (cache, changes) = identities, cache.enabled, let generation = await changes.credentialGeneration() else {
            return try await read(subject)
        }
        let now = Date()
        if let hit = cache.lookup(subject, generation: generation, now: now) { return hit }
        guard let identity = try await read(subject) else { return nil }
        cache.store(subject, identity, generation: generation, until: now + cache.ttl)
        return identity
    }

    func read(_ subject: String) async throws -> Identity? {
        guard let user = try await store.user(id: subject), !user.disabled else { return nil }
        return Identity(user: user)
    }
}
