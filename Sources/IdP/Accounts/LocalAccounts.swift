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

    public init(store: any UserStore, hasher: any PasswordHasher, dummyHash: String) {
        self.store = store; self.hasher = hasher; self.dummyHash = dummyHash
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
        guard let user = try await store.user(id: subject), !user.disabled else { return nil }
        return Identity(user: user)
    }
}
