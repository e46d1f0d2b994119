import Foundation
import IdP
import SQLKit

// MARK: - Browser sessions and pending authorizations

extension SQLStorage {
    static func session(_ r: any SQLRow) throws -> LoginSession {
        LoginSession(hash: try r.s("hash"), sid: try r.s("sid"), userID: try r.s("user_id"), authTime: try r.d("auth_time"),
                     authMethod: try r.s("auth_method"), createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"),
                     lastSeenAt: try r.d("last_seen_at"), address: try r.s("address"), userAgent: try r.s("user_agent"),
                     amr: AMR.decode(try r.s("amr")), factorAt: try r.od("factor_at"))
    }

    public func createSession(_ s: LoginSession) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO login_sessions (hash, sid, user_id, auth_time, auth_method, created_at, expires_at, last_seen_at, address, user_agent,
                                            amr, factor_at)
                VALUES (\(bind: s.hash), \(bind: s.sid), \(bind: s.userID), \(bind: t(s.authTime)), \(bind: s.authMethod), \(bind: t(s.createdAt)),
                        \(bind: t(s.expiresAt)), \(bind: t(s.lastSeenAt)), \(bind: s.address), \(bind: s.userAgent),
                        \(bind: AMR.encode(s.amr)), \(bind: t(s.factorAt)))
                """).run()
        }
    }

    public func session(hash: String) async throws -> LoginSession? {
        try await read { db in try await db.raw("SELECT * FROM login_sessions WHERE hash = \(bind: hash)").first().map(Self.session) }
    }

    public func session(sid: String) async throws -> LoginSession? {
        try await read { db in try await db.raw("SELECT * FROM login_sessions WHERE sid = \(bind: sid)").first().map(Self.session) }
    }

    public func touchSession(hash: String, now: Date) async throws {
        try await run { db in
            try await db.raw("UPDATE login_sessions SET last_seen_at = \(bind: t(now)) WHERE hash = \(bind: hash) AND last_seen_at < \(bind: t(now))").run()
        }
    }

    public func deleteSession(hash: String) async throws {
        try await run { db in try await db.raw("DELETE FROM login_sessions WHERE hash = \(bind: hash)").run() }
    }

    public func sessions(userID: String, now: Date) async throws -> [LoginSession] {
        try await read { db in
            try await db.raw("""
                SELECT * FROM login_sessions WHERE user_id = \(bind: userID) AND expires_at > \(bind: t(now)) ORDER BY created_at DESC LIMIT 100
                """).all().map(Self.session)
        }
    }

    @discardableResult
    public func deleteSessions(userID: String, except: String?) async throws -> Int {
        try await run { db in
            try await db.raw("""
                DELETE FROM login_sessions WHERE user_id = \(bind: userID) AND hash <> \(bind: except ?? "") RETURNING hash
                """).all().count
        }
    }

    public func createPendingAuthorization(_ p: PendingAuthorization) async throws {
        let requestJSON = String(data: try JSONEncoder().encode(p.request), encoding: .utf8)!
        try await run { db in
            try await db.raw("""
                INSERT INTO pending_authorizations (id, browser_hash, request_json, created_at, expires_at)
                VALUES (\(bind: p.id), \(bind: p.browserHash), \(bind: requestJSON), \(bind: t(p.createdAt)), \(bind: t(p.expiresAt)))
                """).run()
        }
    }

    public func pendingAuthorization(id: String) async throws -> PendingAuthorization? {
        try await run { db in
            try await db.raw("SELECT * FROM pending_authorizations WHERE id = \(bind: id)").first().map { r in
                PendingAuthorization(id: try r.s("id"), browserHash: try r.s("browser_hash"),
                                     request: try JSONDecoder().decode(AuthorizationRequest.self, from: Data(try r.s("request_json").utf8)),
                                     createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"))
            }
        }
    }

    public func deletePendingAuthorization(id: String) async throws {
        try await run { db in try await db.raw("DELETE FROM pending_authorizations WHERE id = \(bind: id)").run() }
    }
}

// MARK: - Families by session, labels

extension SQLStorage {
    public func families(sessionID: String) async throws -> [RefreshFamily] {
        guard !sessionID.isEmpty else { return [] }
        return try await read { db in
            try await db.raw("SELECT * FROM refresh_families WHERE session_id = \(bind: sessionID) ORDER BY created_at DESC LIMIT 1000")
                .all().map(Self.family)
        }
    }

    public func setFamilyLabel(id: String, userID: String, label: String) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE refresh_families SET label = \(bind: label) WHERE id = \(bind: id) AND user_id = \(bind: userID) RETURNING id
                """).first() != nil
        }
    }
}

// MARK: - Back-channel logout deliveries

extension SQLStorage {
    static func delivery(_ r: any SQLRow) throws -> LogoutDelivery {
        LogoutDelivery(id: try r.s("id"), clientID: try r.s("client_id"), uri: try r.s("uri"), subject: try r.s("subject"), sid: try r.s("sid"),
                       createdAt: try r.d("created_at"), nextAttemptAt: try r.d("next_attempt_at"), attempts: try r.decode(column: "attempts", as: Int.self),
                       deadline: try r.d("deadline"))
    }

    static func insertDelivery(_ d: LogoutDelivery, _ db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO logout_deliveries (id, client_id, uri, subject, sid, created_at, next_attempt_at, attempts, deadline)
            VALUES (\(bind: d.id), \(bind: d.clientID), \(bind: d.uri), \(bind: d.subject), \(bind: d.sid), \(bind: t(d.createdAt)),
                    \(bind: t(d.nextAttemptAt)), \(bind: d.attempts), \(bind: t(d.deadline)))
            """).run()
    }

    public func endFamilies(ids: [String], now: Date, reason: String, logouts: [String: LogoutDelivery]) async throws -> [String] {
        guard !ids.isEmpty else { return [] }
        return try await tx { db in
            var revoked: [String] = []
            for id in ids {
                let won = try await db.raw("""
                    UPDATE refresh_families SET revoked_at = \(bind: t(now)), revoke_reason = \(bind: reason)
                    WHERE id = \(bind: id) AND revoked_at IS NULL RETURNING id
                    """).first() != nil
                if won { revoked.append(id) }
            }
            var queued = Set<String>()
            for id in revoked {
                if let d = logouts[id], queued.insert(d.id).inserted { try await Self.insertDelivery(d, db) }
            }
            return revoked
        }
    }

    public func dueLogouts(now: Date, limit: Int) async throws -> [LogoutDelivery] {
        try await run { db in
            try await db.raw("""
                SELECT * FROM logout_deliveries WHERE next_attempt_at <= \(bind: t(now)) AND deadline > \(bind: t(now))
                ORDER BY next_attempt_at LIMIT \(bind: limit)
                """).all().map(Self.delivery)
        }
    }

    public func claimLogout(id: String, attempts: Int, nextAttemptAt: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = \(bind: t(nextAttemptAt))
                WHERE id = \(bind: id) AND attempts = \(bind: attempts) RETURNING id
                """).first() != nil
        }
    }

    public func deleteLogout(id: String) async throws {
        try await run { db in try await db.raw("DELETE FROM logout_deliveries WHERE id = \(bind: id)").run() }
    }
}
