import Foundation
import IdP
import PostgresNIO
import SQLKit

// MARK: - PostgreSQL: a rotation in one round trip, prepared once per connection

extension SQLStorage {
    /// PostgreSQL: the conditional update, the successor, the family's stamp and the audit row in ONE
    /// statement (data-modifying CTEs commit together), so a rotation is one round trip instead of six
    /// (BEGIN, four statements, COMMIT). Only a lost race reads again: the statement's own snapshot may
    /// predate the winner's commit, and a later read sees it.
    ///
    /// The statement is a named prepared statement (`RefreshRotationStatement`): each connection parses it once,
    /// and after PostgreSQL's first five executions it runs a cached generic plan. Sent unnamed, parse,
    /// analysis and planning of its four CTEs were half of the server's CPU per refresh (docs/performance.md).
    func rotateInOneStatement(hash: String, now: Date, successor k: RefreshToken, audit e: AuditEvent?) async throws -> RefreshRotation {
        let statement = RefreshRotationStatement(now: t(now), hash: hash, successor: k, audit: e)
        let outcome = try await run { db in
            guard let pg = db as? FastPostgresDatabase else {
                preconditionFailure("the PostgreSQL backend hands out FastPostgresDatabase sessions")
            }
            return try await pg.first(statement)
        }
        guard let outcome else { return .notFound }
        if outcome.won > 0 { return .rotated }
        if let usedAt = outcome.usedAt { return .alreadyUsed(usedAt: Date(timeIntervalSince1970: TimeInterval(usedAt))) }
        // Lost to a rotation that committed after this statement's snapshot was taken: read again.
        let again = try await read { db in try await db.raw("SELECT used_at FROM refresh_tokens WHERE hash = \(bind: hash)").first() }
        guard let again, let usedAt = try again.od("used_at") else { return .notFound }
        return .alreadyUsed(usedAt: usedAt)
    }
}

/// The rotation as one prepared statement. `$16` says whether the audit row is written (its values
/// are NULL when not); the parameter types are fixed here so every execution matches the prepared one.
struct RefreshRotationStatement: PostgresPreparedStatement {
    static let name = "portal_refresh_rotation_v2"
    // Data-modifying CTEs run to completion whether or not the query reads them, so only `used` is
    // read back: fewer plan nodes to set up per execution (ExecutorStart was a sixth of the server's
    // CPU per refresh once parsing and planning were gone).
    static let sql = """
        WITH used AS (
          UPDATE refresh_tokens SET used_at = $1
          WHERE hash = $2 AND used_at IS NULL
            AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL)
          RETURNING family_id),
        successor AS (
          INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at, used_at)
          SELECT $3, $4, $5, $6, $7, NULL FROM used),
        stamp AS (
          UPDATE refresh_families SET last_used_at = $1 WHERE id IN (SELECT family_id FROM used)),
        audit AS (
          INSERT INTO audit_events (time, type, actor, subject, client_id, remote_address, success, details_json)
          SELECT $8, $9, $10, $11, $12, $13, $14, $15 FROM used WHERE $16)
        SELECT (SELECT COUNT(*) FROM used) AS won, (SELECT used_at FROM refresh_tokens WHERE hash = $2) AS used_at
        """
    static let bindingDataTypes: [PostgresDataType] = [
        .int8, .text, .text, .text, .text, .int8, .int8,                  // now, hash, the successor
        .int8, .text, .text, .text, .text, .text, .int8, .text, .bool,    // the audit row, and whether to write it
    ]
    typealias Row = (won: Int, usedAt: Int?)

    let now: Int
    let hash: String
    let successor: RefreshToken
    let audit: AuditEvent?

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 16)
        b.append(now)
        b.append(hash)
        b.append(successor.hash)
        b.append(successor.familyID)
        b.append(successor.clientID)
        b.append(t(successor.createdAt))
        b.append(t(successor.idleExpiresAt))
        if let e = audit {
            b.append(t(e.time))
            b.append(e.type)
            b.append(e.actor)
            b.append(e.subject)
            b.append(e.clientID)
            b.append(e.remoteAddress)
            b.append(e.success ? 1 : 0)
            b.append(json(e.details))
            b.append(true)
        } else {
            for _ in 0..<8 { b.appendNull() }
            b.append(false)
        }
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let (won, usedAt) = try row.decode((Int, Int?).self)
        return (won, usedAt)
    }
}

extension FastPostgresDatabase {
    /// The first row of a prepared statement (PostgresNIO prepares it on this connection when it has not yet).
    func first<S: PostgresPreparedStatement>(_ statement: S) async throws -> S.Row? {
        let rows = try await connection.execute(statement, logger: logger)
        var first: S.Row?
        for try await row in rows where first == nil { first = row }
        return first
    }
}
