import Foundation
import IdP
import SQLKit

// MARK: - Setup, audit, maintenance

extension SQLStorage {
    public func createSetupToken(_ s: SetupToken) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO setup_tokens (hash, created_at, expires_at, used_at)
                VALUES (\(bind: s.hash), \(bind: t(s.createdAt)), \(bind: t(s.expiresAt)), \(bind: t(s.usedAt)))
                """).run()
        }
    }

    public func setupToken(hash: String) async throws -> SetupToken? {
        try await run { db in
            try await db.raw("SELECT * FROM setup_tokens WHERE hash = \(bind: hash)").first().map { r in
                SetupToken(hash: try r.s("hash"), createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"), usedAt: try r.od("used_at"))
            }
        }
    }

    public func completeSetup(hash: String, now: Date, admin: User) async throws -> SetupCompletion {
        try await tx { db in
            if try await db.raw("SELECT id FROM users WHERE is_admin = 1 AND disabled = 0 LIMIT 1").first() != nil { return .adminExists }
            let won = try await db.raw("""
                UPDATE setup_tokens SET used_at = \(bind: t(now))
                WHERE hash = \(bind: hash) AND used_at IS NULL AND expires_at > \(bind: t(now)) RETURNING hash
                """).first() != nil
            guard won else { return .invalidToken }
            let u = admin
            try await db.raw("""
                INSERT INTO users (id, username, display_name, email, email_verified, groups_json, is_admin, disabled, password_hash, created_at, updated_at)
                VALUES (\(bind: u.id), \(bind: u.username), \(bind: u.displayName), \(bind: u.email), \(bind: u.emailVerified ? 1 : 0),
                        \(bind: json(u.groups)), 1, 0, \(bind: u.passwordHash), \(bind: t(u.createdAt)), \(bind: t(u.updatedAt)))
                """).run()
            // Every other outstanding setup link dies with this one.
            try await db.raw("UPDATE setup_tokens SET used_at = \(bind: t(now)) WHERE used_at IS NULL").run()
            return .created
        }
    }

    /// Committed before it returns; events appended together are written together (`AuditBatcher`).
    public func appendAudit(_ e: AuditEvent) async throws {
        try await audits.append(e)
    }

    public func auditEvents(_ q: AuditQuery) async throws -> [AuditEvent] {
        try await run { db in
            var sql = SQLQueryString("SELECT * FROM audit_events WHERE 1 = 1")
            if let v = q.type { sql.appendInterpolation(unsafeRaw: " AND type = "); sql.appendInterpolation(bind: v) }
            if let v = q.actor { sql.appendInterpolation(unsafeRaw: " AND actor = "); sql.appendInterpolation(bind: v) }
            if let v = q.subject { sql.appendInterpolation(unsafeRaw: " AND subject = "); sql.appendInterpolation(bind: v) }
            if let v = q.since { sql.appendInterpolation(unsafeRaw: " AND time >= "); sql.appendInterpolation(bind: t(v)) }
            if let v = q.until { sql.appendInterpolation(unsafeRaw: " AND time < "); sql.appendInterpolation(bind: t(v)) }
            if let v = q.before { sql.appendInterpolation(unsafeRaw: " AND id < "); sql.appendInterpolation(bind: Int(v)) }
            sql.appendInterpolation(unsafeRaw: " ORDER BY id DESC LIMIT \(max(1, min(q.limit, 1000)))")
            return try await db.raw(sql).all().map { r in
                AuditEvent(id: Int64(try r.i("id")), time: try r.d("time"), type: try r.s("type"), actor: try r.s("actor"),
                           subject: try r.s("subject"), clientID: try r.s("client_id"), remoteAddress: try r.s("remote_address"),
                           success: try r.b("success"),
                           details: (try? JSONDecoder().decode([String: String].self, from: Data(try r.s("details_json").utf8))) ?? [:])
            }
        }
    }

    public func auditEventTypes() async throws -> [String] {
        // Sorted here, not by the database: PostgreSQL's collation would order differently from SQLite's.
        try await run { db in
            try await db.raw("SELECT DISTINCT type FROM audit_events").all().map { try $0.s("type") }.sorted()
        }
    }

    public func purgeExpired(now: Date) async throws -> Int {
        let n = t(now)
        return try await tx { db in
            var removed = 0
            let statements: [SQLQueryString] = [
                "DELETE FROM auth_codes WHERE expires_at < \(bind: n - 3600) RETURNING hash",
                "DELETE FROM pending_authorizations WHERE expires_at < \(bind: n) RETURNING id",
                "DELETE FROM login_sessions WHERE expires_at < \(bind: n) RETURNING hash",
                "DELETE FROM setup_tokens WHERE expires_at < \(bind: n) RETURNING hash",
                "DELETE FROM reveals WHERE expires_at <= \(bind: n) RETURNING id",
                "DELETE FROM logout_deliveries WHERE deadline <= \(bind: n) RETURNING id",
                "DELETE FROM device_grants WHERE expires_at < \(bind: n - 3600) RETURNING device_hash",
                "DELETE FROM webauthn_challenges WHERE expires_at < \(bind: n) RETURNING hash",
                // TOTP enrollments never confirmed within an hour.
                "DELETE FROM factors WHERE confirmed = 0 AND created_at < \(bind: n - 3600) RETURNING id",
                "DELETE FROM login_throttle WHERE window_start < \(bind: n - 86400) AND (locked_until IS NULL OR locked_until < \(bind: n)) RETURNING key",
                "DELETE FROM login_familiar WHERE last_success < \(bind: n - Self.familiarRetention) RETURNING account",
                // A family is kept a day past its end so replays of its tokens are still recognised and audited.
                "DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE expires_at < \(bind: n - 86400) OR revoked_at < \(bind: n - 86400)) RETURNING hash",
                "DELETE FROM refresh_families WHERE expires_at < \(bind: n - 86400) OR revoked_at < \(bind: n - 86400) RETURNING id",
                "DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= \(bind: n) RETURNING kid",
            ]
            for s in statements { removed += try await db.raw(s).all().count }
            return removed
        }
    }

    /// Whether the database answers `SELECT 1` within `timeout` (for /readyz).
    public func isReachable(within timeout: Duration) async -> Bool {
        if let pg = backend as? PostgresBackend { return await pg.ping(timeout: timeout) }
        return (try? await ping()) != nil
    }

    public func ping() async throws {
        try await run { db in _ = try await db.raw("SELECT 1 AS one").first() }
    }
}
