import CSQLite3
import Foundation
import IdP

/// SQLite's refresh-token rotations, written through the writer connection's prepared statements
/// with their values bound directly: no SQL text built, no boxed values and no row dictionaries per
/// statement (docs/performance.md, ninth steps). The statements are those of any rotation: the
/// conditional update (single use, family alive), then — only if it won — the successor, the
/// family's stamp and the audit row.
extension SQLiteBackend {
    /// One transaction for the whole batch, on the writer thread (`transaction`: BEGIN IMMEDIATE, which
    /// waits out another process holding the database, … COMMIT, or ROLLBACK). Throws only when the
    /// batch as a whole failed (rolled back, nothing of it written).
    func rotate(_ batch: [RotationRequest]) async throws -> [RefreshRotation] {
        let handle = connection
        return try await transaction { _ in try batch.map { try handle.rotate($0) } }
    }

    /// Audit events in one transaction on the writer thread, all or nothing.
    func append(_ events: [AuditEvent]) async throws {
        let handle = connection
        try await transaction { _ in for e in events { try handle.insert(e) } }
    }
}

extension SQLiteHandle {
    static let markUsed = """
        UPDATE refresh_tokens SET used_at = ?1
        WHERE hash = ?2 AND used_at IS NULL
          AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL)
        RETURNING family_id
        """
    static let insertSuccessor = """
        INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at, used_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6)
        """
    static let stampFamily = "UPDATE refresh_families SET last_used_at = ?1 WHERE id = ?2"
    static let insertAudit = """
        INSERT INTO audit_events (time, type, actor, subject, client_id, remote_address, success, details_json)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
        """
    static let usedAt = "SELECT used_at FROM refresh_tokens WHERE hash = ?1"

    /// One rotation inside the caller's transaction.
    func rotate(_ r: RotationRequest) throws -> RefreshRotation {
        let now = Int64(t(r.now))
        let family = try withStatement(Self.markUsed) { s -> String? in
            try bind(s, 1, now)
            try bind(s, 2, r.hash)
            return try stepAll(s) { s in text(s, 0) }
        }
        guard let family else {
            let usedAt = try withStatement(Self.usedAt) { s -> Int64?? in
                try bind(s, 1, r.hash)
                return try stepAll(s) { s in sqlite3_column_type(s, 0) == SQLITE_NULL ? nil : sqlite3_column_int64(s, 0) }
            }
            guard let found = usedAt, let usedAt = found else { return .notFound }
            return .alreadyUsed(usedAt: Date(timeIntervalSince1970: TimeInterval(usedAt)))
        }
        let k = r.successor
        try withStatement(Self.insertSuccessor) { s in
            try bind(s, 1, k.hash)
            try bind(s, 2, k.familyID)
            try bind(s, 3, k.clientID)
            try bind(s, 4, Int64(t(k.createdAt)))
            try bind(s, 5, Int64(t(k.idleExpiresAt)))
            if let used = k.usedAt { try bind(s, 6, Int64(t(used))) } else { try check(sqlite3_bind_null(s, 6)) }
            _ = try stepAll(s) { _ in () }
        }
        try withStatement(Self.stampFamily) { s in
            try bind(s, 1, now)
            try bind(s, 2, family)
            _ = try stepAll(s) { _ in () }
        }
        if let e = r.audit { try insert(e) }
        return .rotated
    }

    /// One audit row, inside the caller's transaction or autocommitted.
    func insert(_ e: AuditEvent) throws {
        try withStatement(Self.insertAudit) { s in
            try bind(s, 1, Int64(t(e.time)))
            try bind(s, 2, e.type)
            try bind(s, 3, e.actor)
            try bind(s, 4, e.subject)
            try bind(s, 5, e.clientID)
            try bind(s, 6, e.remoteAddress)
            try bind(s, 7, Int64(e.success ? 1 : 0))
            try bind(s, 8, json(e.details))
            _ = try stepAll(s) { _ in () }
        }
    }

    /// Steps `s` to the end; the first row's value through `row`, or nil when there was none.
    private func stepAll<R>(_ s: OpaquePointer, _ row: (OpaquePointer) -> R) throws -> R? {
        var first: R?
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_ROW {
                if first == nil { first = row(s) }
                continue
            }
            if rc == SQLITE_DONE { return first }
            throw failure(rc)
        }
    }

    private func text(_ s: OpaquePointer, _ i: Int32) -> String {
        guard let p = sqlite3_column_text(s, i) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(s, i))), as: UTF8.self)
    }

    private func bind(_ s: OpaquePointer, _ i: Int32, _ v: Int64) throws { try check(sqlite3_bind_int64(s, i, v)) }

    /// The explicit byte length binds the whole string (with -1 SQLite would stop at an embedded NUL).
    private func bind(_ s: OpaquePointer, _ i: Int32, _ v: String) throws {
        try check(sqlite3_bind_text(s, i, v, Int32(v.utf8.count), csqlite3_transient()))
    }

    private func check(_ rc: Int32) throws { if rc != SQLITE_OK { throw failure(rc) } }
}
