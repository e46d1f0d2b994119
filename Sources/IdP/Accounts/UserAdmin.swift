import Foundation
import Logging

public struct UserAdminError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Managing local users (CLI and admin UI share it). Every change is audited, and
/// disabling or deleting a user ends their sessions and refresh families at once.
public struct UserAdmin: Sendable {
    let store: any Storage
    let hasher: any PasswordHasher
    let passwords: PasswordPolicy
    let clock: any Clock
    let random: any RandomSource
    let auditor: Auditor
    /// `admin_groups`: a local user in one of them is an administrator too.
    let adminGroups: Set<String>
    /// Ends logins, so that applications taking back-channel logout are told.
    let signout: Signout

    public init(store: any Storage, hasher: any PasswordHasher, passwords: PasswordPolicy, clock: any Clock,
                random: any RandomSource, logger: Logger, adminGroups: Set<String> = [], signout: Signout) {
        self.store = store; self.hasher = hasher; self.passwords = passwords; self.clock = clock; self.random = random
        self.adminGroups = adminGroups; self.signout = signout
        self.auditor = Auditor(store: store, clock: clock, logger: logger)
    }

    /// `password` nil: an account with no password at all (a Kerberos-only person): password sign-in always fails.
    public func add(username raw: String, password: String?, email: String, displayName: String, groups: [String], isAdmin: Bool,
                    actor: String) async throws -> User {
        let username = Usernames.canonical(raw)
        guard Usernames.isValidLocal(username) else {
            throw UserAdminError("invalid username '\(raw)': use letters, digits, '.', '_', '-' and '@' (at most 64)")
        }
        if let password, let problem = passwords.problem(with: password) { throw UserAdminError(problem) }
        for g in groups where g.trimmingCharacters(in: .whitespaces).isEmpty || g.count > 256 {
            throw UserAdminError("invalid group name '\(g)'")
        }
        if !email.isEmpty && (!email.contains("@") || email.contains(" ")) { throw UserAdminError("invalid email '\(email)'") }
        let now = clock.now()
        let user = User(id: random.uuid(), username: username, displayName: displayName.isEmpty ? username : displayName,
                        email: email, emailVerified: !email.isEmpty, groups: groups, isAdmin: isAdmin,
                        passwordHash: password == nil ? nil : try await hasher.hash(password ?? ""), createdAt: now)
        do {
            try await store.createUser(user)
        } catch let e as StorageError where e.isConflict {
            throw UserAdminError("user '\(username)' already exists")
        }
        await auditor.record("admin.user.add", actor: actor, subject: user.id, details: ["username": username, "admin": "\(isAdmin)", "password": password == nil ? "none" : "set"])
        return user
    }

    func existing(_ raw: String) async throws -> User {
        guard let u = try await store.user(username: Usernames.canonical(raw)) else { throw UserAdminError("no user '\(raw)'") }
        return u
    }

    func administers(_ u: User) -> Bool { u.isAdmin || u.groups.contains { adminGroups.contains($0) } }

    /// Refuses to take administration away from the one doing it (`actorID`: an administrator in the admin
    /// UI, whatever spelling of the name was typed — the account it resolves to counts) or, without an actor
    /// (the CLI), from the last active local administrator (the flag or an `admin_groups` group) unless
    /// `force`: otherwise nobody could manage the portal. An acting administrator who is not the target stays
    /// one, so the portal keeps an administrator. `verb` completes "You cannot … yourself".
    public func checkRemoval(_ u: User, verb: String, actorID: String?, force: Bool = false) async throws {
        if let actorID {
            if u.id == actorID { throw UserAdminError("You cannot \(verb) yourself: ask another administrator.") }
            return
        }
        guard !force, administers(u), !u.disabled else { return }
        let others = try await store.listUsers().filter { administers($0) && !$0.disabled && $0.id != u.id }
        if others.isEmpty {
            throw UserAdminError("\(u.username) is the last active local administrator: make another one first (portal user add --admin, or "
                + "Make admin in the admin UI), or pass --force if directory administrators (admin_groups) remain.")
        }
    }

    /// The account a typed name resolves to (any spelling), or an error naming it.
    public func resolve(_ raw: String) async throws -> User { try await existing(raw) }

    public func setAdmin(_ raw: String, isAdmin: Bool, actor: String, actorID: String? = nil, force: Bool = false) async throws {
        let u = try await existing(raw)
        if !isAdmin { try await checkRemoval(u, verb: "remove administration from", actorID: actorID, force: force) }
        let now = clock.now()
        try await store.updateUser(id: u.id) { $0.isAdmin = isAdmin; $0.updatedAt = now }
        await auditor.record(isAdmin ? "admin.user.promote" : "admin.user.demote", actor: actor, subject: u.id, details: ["username": u.username])
    }

    public func setDisabled(_ raw: String, disabled: Bool, actor: String, actorID: String? = nil, force: Bool = false) async throws {
        let u = try await existing(raw)
        if disabled { try await checkRemoval(u, verb: "disable", actorID: actorID, force: force) }
        let now = clock.now()
        try await store.updateUser(id: u.id) { $0.disabled = disabled; $0.updatedAt = now }
        if disabled { try await endLogins(u.id, keeping: nil, reason: "account disabled") }
        await auditor.record(disabled ? "admin.user.disable" : "admin.user.enable", actor: actor, subject: u.id,
                             details: ["username": u.username])
    }

    public func delete(_ raw: String, actor: String, actorID: String? = nil, force: Bool = false) async throws {
        let u = try await existing(raw)
        try await checkRemoval(u, verb: "delete", actorID: actorID, force: force)
        let now = clock.now()
        try await endLogins(u.id, keeping: nil, reason: "account deleted")
        _ = try await store.revokeCredentials(ownerID: u.id, now: now)
        _ = try await store.deleteUser(id: u.id)
        await auditor.record("admin.user.delete", actor: actor, subject: u.id, details: ["username": u.username])
    }

    /// Sets a new password and ends every existing login of the account (browser sessions and
    /// refresh families) but the browser session `keeping` (a person changing their own password).
    public func setPassword(_ raw: String, password: String, actor: String, keeping: String? = nil) async throws {
        if let problem = passwords.problem(with: password) { throw UserAdminError(problem) }
        let u = try await existing(raw)
        let hash = try await hasher.hash(password)
        let now = clock.now()
        try await store.updateUser(id: u.id) { $0.passwordHash = hash; $0.updatedAt = now }
        let (sessions, families) = try await endLogins(u.id, keeping: keeping, reason: "password changed")
        await auditor.record(keeping == nil ? "admin.user.set-password" : "password.change", actor: actor, subject: u.id,
                             details: ["username": u.username, "sessions_ended": String(sessions), "families_ended": String(families)])
    }

    /// Ends every browser session (but `keeping`) and refresh family of a person: (sessions, families).
    @discardableResult
    func endLogins(_ userID: String, keeping: String?, reason: String) async throws -> (Int, Int) {
        let ended = try await signout.endEverywhere(userID: userID, keeping: keeping, reason: reason)
        return (ended.sessions, ended.families)
    }

    /// Replaces a local user's groups; the next id_token, TokenReview and credential use see the new set.
    public func setGroups(_ raw: String, groups: [String], actor: String) async throws {
        for g in groups where g.trimmingCharacters(in: .whitespaces).isEmpty || g.count > 256 {
            throw UserAdminError("invalid group name '\(g)'")
        }
        let u = try await existing(raw)
        let now = clock.now()
        try await store.updateUser(id: u.id) { $0.groups = groups; $0.updatedAt = now }
        await auditor.record("admin.user.set-groups", actor: actor, subject: u.id, details: ["username": u.username, "groups": groups.joined(separator: ",")])
    }
}
