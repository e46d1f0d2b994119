import Foundation

// Name-only lookups for the Kerberos login (the KDC already proved who the person is).
// Kept beside the Kerberos code so the authenticators' own files stay as they are.

extension LocalAuthenticator: AccountLookup {
    /// A local account by canonical username; accounts without a password (Kerberos-only) count too.
    public func lookup(username: String) async throws -> AuthenticationResult {
        let name = Usernames.canonical(username)
        guard !name.isEmpty, let user = try await store.user(username: name) else { return .invalidCredentials }
        return user.disabled ? .disabled : .success(Identity(user: user))
    }
}

extension LDAPAuthenticator: AccountLookup {
    /// The directory entry whose username attribute is `username`, found with the service bind;
    /// the same search, account-state check and identity as a password login, without the user bind.
    public func lookup(username: String) async throws -> AuthenticationResult {
        let name = username.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.utf8.count <= 256, !name.contains("\u{0}") else { return .invalidCredentials }
        let found = try await lookupInDirectory(name)
        // A local account holds this name (see `isShadowed`): refused, so that a directory person is
        // never mapped onto the local account by the next lookup in the chain.
        if case .success(let identity) = found, try await isShadowed(identity) { return .refused(Self.shadowedReason) }
        return found
    }

    func lookupInDirectory(_ name: String) async throws -> AuthenticationResult {
        let servers = self.servers
        let config = self.config
        let logger = self.logger
        do {
            return try await threads.run {
                try servers.withSession { session -> AuthenticationResult in
                    let filter = LDAPFilter.and(config.userSearch.filter, "(\(config.userSearch.usernameAttribute)=\(LDAPFilter.escape(name)))")
                    let entries: [LDAPEntry]
                    do {
                        entries = try session.search(base: config.userSearch.baseDN, scope: config.userSearch.scope, filter: filter,
                                                     attributes: Self.userAttributes(config), sizeLimit: 2)
                    } catch let e as LDAPError where e.code == LDAPError.sizeLimitExceeded {
                        return .invalidCredentials
                    }
                    guard entries.count == 1, let entry = entries.first, !entry.dn.isEmpty else {
                        if entries.count > 1 {
                            logger.warning("Kerberos login refused: the username matches more than one entry", metadata: ["username": "\(name)"])
                        }
                        return .invalidCredentials
                    }
                    if try Self.isDisabled(entry, config: config, session: session) { return .disabled }
                    guard let identity = try Self.identity(of: entry, config: config, session: session, logger: logger) else {
                        return .invalidCredentials
                    }
                    return .success(identity)
                }
            }
        } catch let e as LDAPError {
            logger.error("LDAP operation failed", metadata: ["error": "\(e)"])
            throw AuthenticatorUnavailable(e.description)
        } catch let e as BlockingThreadPool.Saturated {
            throw AuthenticatorUnavailable(e.description)
        }
    }
}
