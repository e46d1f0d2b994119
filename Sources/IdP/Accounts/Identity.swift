/// Who someone is, as an authenticator vouches for it.
public struct Identity: Sendable, Equatable {
    /// Stable opaque subject: never the username or the email.
    public var subject: String
    public var username: String
    public var displayName: String
    public var email: String
    public var emailVerified: Bool
    public var groups: [String]
    public var isAdmin: Bool

    public init(subject: String, username: String, displayName: String, email: String, emailVerified: Bool, groups: [String], isAdmin: Bool) {
        self.subject = subject; self.username = username; self.displayName = displayName; self.email = email
        self.emailVerified = emailVerified; self.groups = groups; self.isAdmin = isAdmin
    }

    public init(user: User) {
        self.init(subject: user.id, username: user.username, displayName: user.displayName, email: user.email,
                  emailVerified: user.emailVerified, groups: user.groups, isAdmin: user.isAdmin)
    }
}

public enum AuthenticationResult: Sendable, Equatable {
    case success(Identity)
    /// Unknown user or wrong password: callers must not tell them apart.
    case invalidCredentials
    case disabled
    /// The credentials are right but the account may not sign in here; the reason is shown and audited.
    case refused(String)
}

public struct AuthenticatorUnavailable: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Turns a credential into an `Identity` and re-checks it on every refresh.
public protocol Authenticator: Sendable {
    /// Name recorded with sessions and audit events ("password", "ldap", "kerberos").
    var method: String { get }
    /// Throws `AuthenticatorUnavailable` when the backing service cannot be reached.
    func authenticate(username: String, password: String) async throws -> AuthenticationResult
    /// The current identity for `subject`, or nil when the account is gone or disabled.
    func revalidate(subject: String) async throws -> Identity?
}

/// An authenticator that can also find an account by name alone, for logins where something
/// else has already proven who the person is (Kerberos: the KDC). Adopted by the local and the
/// LDAP authenticators; the Kerberos login looks mapped principals up through it.
public protocol AccountLookup: Authenticator {
    /// `.success` with the account's current identity (subject, groups, …), `.invalidCredentials`
    /// when there is no such account, `.disabled` when it is disabled. No password is checked.
    /// Throws `AuthenticatorUnavailable` when the backing service cannot be reached.
    func lookup(username: String) async throws -> AuthenticationResult
}

/// Hashes passwords. Implementations run the work off the event loop.
public protocol PasswordHasher: Sendable {
    func hash(_ password: String) async throws -> String
    func verify(_ password: String, hash: String) async -> Bool
}

public enum Usernames {
    /// The one spelling of a login name used for lookup, throttling and audit.
    public static func canonical(_ raw: String) -> String {
        raw.precomposedStringWithCanonicalMapping.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// Local usernames: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
    public static func isValidLocal(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 64 else { return false }
        return name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._-@".unicodeScalars.contains($0) }
    }
}

import Foundation
