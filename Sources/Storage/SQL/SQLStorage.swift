import Foundation
import IdP
import SQLKit
import CoreMetrics

/// The storage contract over SQL, shared by SQLite and PostgreSQL.
public final class SQLStorage: Storage {
    let backend: any SQLBackend
    /// Moves after each write here that a credential check reads (see `credentialChanges`): this replica's
    /// own memory of verified credentials empties at once, without waiting for its NOTIFY to come back.
    let credentialWrites = ChangeCounter()

    /// Opens storage on a backend and applies pending migrations.
    public static func open(_ backend: any SQLBackend, now: Date) async throws -> SQLStorage {
        try await Migrations.apply(backend, now: now)
        return SQLStorage(backend: backend)
    }

    /// Refresh-token rotations arriving together are written together: on SQLite one batch at a
    /// time on the writer thread; on PostgreSQL one batch at a time from the writer's own thread and
    /// connections, a second (up to the writer's 1-4 connections) only when one stalls (`RotationBatcher.stall`).
    let rotations: RotationBatcher
    /// Audit events written on their own, committed together when they arrive together.
    let audits: AuditBatcher

    init(backend: any SQLBackend) {
        self.backend = backend
        // A request waits for its batch at most as long as it would have waited for the database alone.
        let maxWait = (backend as? PostgresBackend)?.options.acquireTimeout ?? .seconds(SQLiteHandle.busyDeadline)
        // PostgreSQL: as many lanes as the writer has connections (1-4), so a lane never waits for one.
        let lanes = (backend as? PostgresBackend).map { max(1, PostgresPools.writerShare(size: $0.options.poolSize).writer) } ?? 1
        rotations = RotationBatcher(lanes: lanes, maxWait: maxWait, spread: RotationBatcher.stall,
                                    executor: backend is SQLiteBackend ? SQLiteBackend.writer : PostgresBackend.writerExecutor,
                                    write: RotationWriter(backend: backend).write)
        audits = AuditBatcher(lanes: backend is SQLiteBackend ? 1 : 4, executor: backend is SQLiteBackend ? SQLiteBackend.writer : nil,
                              write: Self.auditWriter(backend))
    }

    public func close() async throws { try await backend.close() }

    /// Rotation batches written so far, the rotations in them and the largest (`portal bench rotation`).
    public var rotationStatistics: (batches: Int, requests: Int, largest: Int) { rotations.statistics }

    var forUpdate: String { backend.flavor == .postgres ? " FOR UPDATE" : "" }

    func tx<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        do { return try await backend.transaction(body) } catch let e as StorageError { throw e } catch let e as CallerError {
            throw e.error  // the caller's own refusal, unchanged (the transaction was rolled back)
        } catch {
            throw Self.translate(error)
        }
    }

    func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await Self.translating { try await backend.run(body) }
    }

    /// Lookups on the hot paths (token, user, client, credential, robot): read-only statements.
    func read<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await Self.translating { try await backend.read(body) }
    }

    /// `body`, with any error that is not already a `StorageError` translated into one.
    static func translating<R>(_ body: () async throws -> R) async throws -> R {
        do { return try await body() } catch let e as StorageError { throw e } catch { throw translate(error) }
    }

    static func translate(_ error: any Error) -> StorageError {
        Counter(label: "portal_storage_errors_total").increment()
        let text = String(reflecting: error)
        if text.localizedCaseInsensitiveContains("unique") || text.contains("23505") || text.localizedCaseInsensitiveContains("constraint") {
            return .conflict(text)
        }
        return .unavailable(text)
    }
}

// MARK: - Row helpers

func t(_ d: Date) -> Int { Int(d.timeIntervalSince1970.rounded(.down)) }
func t(_ d: Date?) -> Int? { d.map { t($0) } }

extension SQLRow {
    func s(_ c: String) throws -> String { try decode(column: c, as: String.self) }
    func os(_ c: String) throws -> String? { try decode(column: c, as: String?.self) }
    func i(_ c: String) throws -> Int { try decode(column: c, as: Int.self) }
    func b(_ c: String) throws -> Bool { try decode(column: c, as: Int.self) != 0 }
    func d(_ c: String) throws -> Date { Date(timeIntervalSince1970: TimeInterval(try i(c))) }
    func od(_ c: String) throws -> Date? { try decode(column: c, as: Int?.self).map { Date(timeIntervalSince1970: TimeInterval($0)) } }
    func list(_ c: String) throws -> [String] { try stringList(try s(c)) }
}

/// A stored JSON list of strings: the fast path for what `json(_:)` writes, the decoder otherwise.
func stringList(_ text: String) throws -> [String] {
    if let fast = simpleStringArray(text) { return fast }
    return try JSONDecoder().decode([String].self, from: Data(text.utf8))
}

/// `["a","b"]` without escapes, as `json(_:)` writes plain names, parsed without a JSON decoder
/// (group lists are read on every token refresh and review); nil means "use the full decoder".
func simpleStringArray(_ text: String) -> [String]? {
    let u = Array(text.utf8)
    guard u.count >= 2, u.first == UInt8(ascii: "["), u.last == UInt8(ascii: "]") else { return nil }
    if u.count == 2 { return [] }
    var out: [String] = []
    var i = 1
    while i < u.count - 1 {
        guard u[i] == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        while j < u.count, u[j] != UInt8(ascii: "\"") {
            if u[j] == UInt8(ascii: "\\") || u[j] < 0x20 { return nil }
            j += 1
        }
        guard j < u.count - 1 else { return nil }
        out.append(String(decoding: u[(i + 1)..<j], as: UTF8.self))
        i = j + 1
        if u[i] == UInt8(ascii: ",") { i += 1; guard i < u.count - 1 else { return nil } } else if i != u.count - 1 { return nil }
    }
    return out
}

/// Group lists and audit details as JSON text, written without JSONEncoder (one per token
/// rotation and audit event); keys sorted so equal maps store equal text.
func json(_ list: [String]) -> String {
    var out = "["
    for (i, s) in list.enumerated() {
        if i > 0 { out.append(",") }
        JSONObjectWriter.appendString(s, to: &out)
    }
    return out + "]"
}

func json(_ map: [String: String]) -> String {
    var w = JSONObjectWriter()
    for k in map.keys.sorted() { w.add(k, map[k]!) }
    return w.string
}

// MARK: - Users

extension SQLStorage {
    static func user(_ r: any SQLRow) throws -> User {
        User(id: try r.s("id"), username: try r.s("username"), displayName: try r.s("display_name"), email: try r.s("email"),
             emailVerified: try r.b("email_verified"), groups: try r.list("groups_json"), isAdmin: try r.b("is_admin"),
             disabled: try r.b("disabled"), passwordHash: try r.os("password_hash"), createdAt: try r.d("created_at"),
             updatedAt: try r.d("updated_at"))
    }

    public func createUser(_ u: User) async throws {
        try await changingCredentials { try await run { db in
            try await db.raw("""
                INSERT INTO users (id, username, display_name, email, email_verified, groups_json, is_admin, disabled, password_hash, created_at, updated_at)
                VALUES (\(bind: u.id), \(bind: u.username), \(bind: u.displayName), \(bind: u.email), \(bind: u.emailVerified ? 1 : 0),
                        \(bind: json(u.groups)), \(bind: u.isAdmin ? 1 : 0), \(bind: u.disabled ? 1 : 0), \(bind: u.passwordHash),
                        \(bind: t(u.createdAt)), \(bind: t(u.updatedAt)))
                """).run()
        } }
    }

    public func user(id: String) async throws -> User? {
        try await read { db in try await db.raw("SELECT * FROM users WHERE id = \(bind: id)").first().map(Self.user) }
    }

    public func user(username: String) async throws -> User? {
        try await read { db in try await db.raw("SELECT * FROM users WHERE username = \(bind: username)").first().map(Self.user) }
    }

    @discardableResult
    public func updateUser(id: String, _ body: @Sendable (inout User) throws -> Void) async throws -> User {
        // The closure is not @escaping: read, apply and write inside one transaction.
        try await changingCredentials { try await withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            let lock = forUpdate
            return try await tx { db in
                guard var u = try await db.raw("SELECT * FROM users WHERE id = \(bind: id)\(unsafeRaw: lock)").first().map(Self.user) else {
                    throw StorageError.notFound("user \(id)")
                }
                do { try box.value(&u) } catch { throw CallerError(error: error) }
                try await db.raw("""
                    UPDATE users SET username = \(bind: u.username), display_name = \(bind: u.displayName), email = \(bind: u.email),
                      email_verified = \(bind: u.emailVerified ? 1 : 0), groups_json = \(bind: json(u.groups)),
                      is_admin = \(bind: u.isAdmin ? 1 : 0), disabled = \(bind: u.disabled ? 1 : 0),
                      password_hash = \(bind: u.passwordHash), updated_at = \(bind: t(u.updatedAt))
                    WHERE id = \(bind: id)
                    """).run()
                return u
            }
        } }
    }

    public func deleteUser(id: String) async throws -> Bool {
        try await changingCredentials { try await tx { db in
            // A deleted person's second factors go with them (a new account of the same name starts without any).
            try await db.raw("DELETE FROM factors WHERE user_id = \(bind: id)").run()
            try await db.raw("DELETE FROM recovery_codes WHERE user_id = \(bind: id)").run()
            try await db.raw("DELETE FROM mfa_grace WHERE user_id = \(bind: id)").run()
            return try await db.raw("DELETE FROM users WHERE id = \(bind: id) RETURNING id").first() != nil
        } }
    }

    public func listUsers() async throws -> [User] {
        try await run { db in try await db.raw("SELECT * FROM users ORDER BY username").all().map(Self.user) }
    }

    public func adminExists() async throws -> Bool {
        try await run { db in
            try await db.raw("SELECT id FROM users WHERE is_admin = 1 AND disabled = 0 LIMIT 1").first() != nil
        }
    }
}

/// An error thrown by a caller's closure inside a transaction: passed through, not translated.
struct CallerError: Error { let error: any Error }

/// Carries a non-escaping closure into the transaction body, which runs before `updateUser` returns.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

// MARK: - Clients

extension SQLStorage {
    static func client(_ r: any SQLRow) throws -> Client {
        Client(id: try r.s("id"), name: try r.s("name"), redirectURIs: try r.list("redirect_uris_json"), isPublic: try r.b("is_public"),
               secretHash: try r.os("secret_hash"), createdAt: try r.d("created_at"),
               postLogoutRedirectURIs: try r.list("post_logout_redirect_uris_json"), backchannelLogoutURI: try r.s("backchannel_logout_uri"),
               introspectAll: try r.b("introspect_all"),
               grantTypes: (try r.s("grant_types_json")).isEmpty ? Client.defaultGrantTypes : try r.list("grant_types_json"))
    }

    public func createClient(_ c: Client) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO clients (id, name, redirect_uris_json, is_public, secret_hash, created_at, post_logout_redirect_uris_json,
                                     backchannel_logout_uri, introspect_all, grant_types_json)
                VALUES (\(bind: c.id), \(bind: c.name), \(bind: json(c.redirectURIs)), \(bind: c.isPublic ? 1 : 0), \(bind: c.secretHash), \(bind: t(c.createdAt)),
                        \(bind: json(c.postLogoutRedirectURIs)), \(bind: c.backchannelLogoutURI), \(bind: c.introspectAll ? 1 : 0),
                        \(bind: json(c.grantTypes)))
                """).run()
        }
    }

    public func client(id: String) async throws -> Client? {
        try await read { db in try await db.raw("SELECT * FROM clients WHERE id = \(bind: id)").first().map(Self.client) }
    }

    public func listClients() async throws -> [Client] {
        try await run { db in try await db.raw("SELECT * FROM clients ORDER BY id").all().map(Self.client) }
    }

    public func deleteClient(id: String) async throws -> Bool {
        try await run { db in try await db.raw("DELETE FROM clients WHERE id = \(bind: id) RETURNING id").first() != nil }
    }
}

// MARK: - Codes

extension SQLStorage {
    static func code(_ r: any SQLRow) throws -> AuthorizationCode {
        AuthorizationCode(hash: try r.s("hash"),
                          grant: Grant(userID: try r.s("user_id"), clientID: try r.s("client_id"), scopes: try r.list("scopes"),
                                       authTime: try r.d("auth_time"), authMethod: try r.s("auth_method"), sessionID: try r.s("session_id"),
                                       amr: AMR.decode(try r.s("amr"))),
                          redirectURI: try r.s("redirect_uri"), nonce: try r.os("nonce"), codeChallenge: try r.os("code_challenge"),
                          createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"), usedAt: try r.od("used_at"),
                          familyID: try r.os("family_id"))
    }

    public func createCode(_ c: AuthorizationCode) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO auth_codes (hash, user_id, client_id, scopes, auth_time, auth_method, redirect_uri, nonce, code_challenge, created_at, expires_at, used_at, family_id, session_id, amr)
                VALUES (\(bind: c.hash), \(bind: c.grant.userID), \(bind: c.grant.clientID), \(bind: json(c.grant.scopes)),
                        \(bind: t(c.grant.authTime)), \(bind: c.grant.authMethod), \(bind: c.redirectURI), \(bind: c.nonce),
                        \(bind: c.codeChallenge), \(bind: t(c.createdAt)), \(bind: t(c.expiresAt)), \(bind: t(c.usedAt)), \(bind: c.familyID),
                        \(bind: c.grant.sessionID), \(bind: AMR.encode(c.grant.amr)))
                """).run()
        }
    }

    public func code(hash: String) async throws -> AuthorizationCode? {
        try await read { db in try await db.raw("SELECT * FROM auth_codes WHERE hash = \(bind: hash)").first().map(Self.code) }
    }

    public func redeemCode(hash: String, now: Date, family: RefreshFamily, firstToken: RefreshToken) async throws -> CodeRedemption {
        try await tx { db in
            let won = try await db.raw("""
                UPDATE auth_codes SET used_at = \(bind: t(now)), family_id = \(bind: family.id)
                WHERE hash = \(bind: hash) AND used_at IS NULL RETURNING hash
                """).first() != nil
            if won {
                try await Self.insertFamily(family, db)
                try await Self.insertToken(firstToken, db)
                return .redeemed
            }
            guard let row = try await db.raw("SELECT family_id FROM auth_codes WHERE hash = \(bind: hash)").first() else { return .notFound }
            return .alreadyUsed(familyID: try row.os("family_id"))
        }
    }
}

// MARK: - Refresh tokens

extension SQLStorage {
    static func family(_ r: any SQLRow) throws -> RefreshFamily {
        RefreshFamily(id: try r.s("id"),
                      grant: Grant(userID: try r.s("user_id"), clientID: try r.s("client_id"), scopes: try r.list("scopes"),
                                   authTime: try r.d("auth_time"), authMethod: try r.s("auth_method"), sessionID: try r.s("session_id"),
                                   amr: AMR.decode(try r.s("amr"))),
                      createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"), lastUsedAt: try r.d("last_used_at"),
                      revokedAt: try r.od("revoked_at"), revokeReason: try r.os("revoke_reason"),
                      address: try r.s("address"), userAgent: try r.s("user_agent"), purpose: try r.s("purpose"), label: try r.s("label"))
    }

    static func token(_ r: any SQLRow) throws -> RefreshToken {
        RefreshToken(hash: try r.s("hash"), familyID: try r.s("family_id"), clientID: try r.s("client_id"),
                     createdAt: try r.d("created_at"), idleExpiresAt: try r.d("idle_expires_at"), usedAt: try r.od("used_at"))
    }

    static func insertFamily(_ f: RefreshFamily, _ db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO refresh_families (id, user_id, client_id, scopes, auth_time, auth_method, created_at, expires_at, last_used_at,
                                          revoked_at, revoke_reason, address, user_agent, session_id, purpose, label, amr)
            VALUES (\(bind: f.id), \(bind: f.grant.userID), \(bind: f.grant.clientID), \(bind: json(f.grant.scopes)),
                    \(bind: t(f.grant.authTime)), \(bind: f.grant.authMethod), \(bind: t(f.createdAt)), \(bind: t(f.expiresAt)),
                    \(bind: t(f.lastUsedAt)), \(bind: t(f.revokedAt)), \(bind: f.revokeReason), \(bind: f.address), \(bind: f.userAgent),
                    \(bind: f.grant.sessionID), \(bind: f.purpose), \(bind: f.label), \(bind: AMR.encode(f.grant.amr)))
            """).run()
    }

    static func insertToken(_ k: RefreshToken, _ db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at, used_at)
            VALUES (\(bind: k.hash), \(bind: k.familyID), \(bind: k.clientID), \(bind: t(k.createdAt)), \(bind: t(k.idleExpiresAt)), \(bind: t(k.usedAt)))
            """).run()
    }

    /// The token and its family in one query (one round trip on PostgreSQL, a prepared statement
    /// there: `RefreshLookupStatement`): the family's columns as they are, the token's under `token_` names.
    public func refreshToken(hash: String) async throws -> (RefreshToken, RefreshFamily)? {
        try await read { db in
            let found: (any SQLRow)?
            if let pg = db as? FastPostgresDatabase {
                found = try await pg.first(RefreshLookupStatement(hash: hash))
            } else {
                var query = SQLQueryString(RefreshLookupStatement.sqlite)
                query.appendInterpolation(bind: hash)
                found = try await db.raw(query).first()
            }
            guard let r = found else { return nil }
            let family = try Self.family(r)
            let token = RefreshToken(hash: try r.s("token_hash"), familyID: family.id, clientID: try r.s("token_client_id"),
                                     createdAt: try r.d("token_created_at"), idleExpiresAt: try r.d("token_idle_expires_at"),
                                     usedAt: try r.od("token_used_at"))
            return (token, family)
        }
    }

    public func rotateRefreshToken(hash: String, now: Date, successor: RefreshToken, audit: AuditEvent?) async throws -> RefreshRotation {
        try await rotations.rotate(RotationRequest(hash: hash, now: now, successor: successor, audit: audit))
    }

    public func beginRefreshRotation(hash: String, now: Date, successor: RefreshToken, audit: AuditEvent?) -> PendingRefreshRotation {
        rotations.begin(RotationRequest(hash: hash, now: now, successor: successor, audit: audit))
    }

    public func startFamily(_ family: RefreshFamily, firstToken: RefreshToken) async throws {
        try await tx { db in
            try await Self.insertFamily(family, db)
            try await Self.insertToken(firstToken, db)
        }
    }

    public func refreshTokenIsUnused(hash: String) async throws -> Bool {
        try await read { db in
            try await db.raw("SELECT hash FROM refresh_tokens WHERE hash = \(bind: hash) AND used_at IS NULL").first() != nil
        }
    }

    public func family(id: String) async throws -> RefreshFamily? {
        try await read { db in try await db.raw("SELECT * FROM refresh_families WHERE id = \(bind: id)").first().map(Self.family) }
    }

    @discardableResult
    public func revokeFamily(id: String, now: Date, reason: String) async throws -> Bool {
        // One statement: run again if PostgreSQL picks it as a deadlock's victim (a refresh batch stamping the family).
        try await retryingWhenPostgresAsks { try await run { db in
            try await db.raw("""
                UPDATE refresh_families SET revoked_at = \(bind: t(now)), revoke_reason = \(bind: reason)
                WHERE id = \(bind: id) AND revoked_at IS NULL RETURNING id
                """).first() != nil
        } }
    }

    @discardableResult
    public func revokeFamilies(userID: String, now: Date, reason: String) async throws -> Int {
        try await retryingWhenPostgresAsks { try await run { db in
            try await db.raw("""
                UPDATE refresh_families SET revoked_at = \(bind: t(now)), revoke_reason = \(bind: reason)
                WHERE user_id = \(bind: userID) AND revoked_at IS NULL AND expires_at > \(bind: t(now)) RETURNING id
                """).all().count
        } }
    }

    public func activeFamilies(userID: String?, now: Date) async throws -> [RefreshFamily] {
        try await run { db in
            if let userID {
                return try await db.raw("""
                    SELECT * FROM refresh_families WHERE user_id = \(bind: userID) AND revoked_at IS NULL AND expires_at > \(bind: t(now))
                    ORDER BY created_at DESC
                    """).all().map(Self.family)
            }
            return try await db.raw("""
                SELECT * FROM refresh_families WHERE revoked_at IS NULL AND expires_at > \(bind: t(now)) ORDER BY created_at DESC
                """).all().map(Self.family)
        }
    }
}
