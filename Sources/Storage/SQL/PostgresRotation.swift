import Foundation
import IdP
import PostgresNIO
import SQLKit

// MARK: - PostgreSQL: rotations in one round trip, prepared once per connection

/// PostgreSQL: the conditional update, the successor, the family's stamp and the audit row in ONE
/// statement (data-modifying CTEs commit together), so a rotation is one round trip instead of six
/// (BEGIN, four statements, COMMIT), and a batch of rotations (`RotationBatcher`) is one round trip
/// and one commit for all of them.
///
/// Both are named prepared statements: each connection parses them once, and after PostgreSQL's
/// first five executions they run a cached generic plan. Sent unnamed, parse, analysis and planning
/// of the four CTEs were half of the server's CPU per refresh (docs/performance.md).
enum PostgresRotation {
    /// What the statement saw for one request.
    enum Outcome: Sendable, Equatable {
        /// No such token (or its family is gone).
        case unknown
        case won
        /// Used before this statement's snapshot, at this time.
        case usedAt(Int)
        /// Unused in the snapshot, yet another rotation got it first: read again after the commit.
        case lost
    }

    static func one(_ r: RotationRequest, backend: any SQLBackend) async throws -> [Outcome] {
        let statement = RefreshRotationStatement(now: t(r.now), hash: r.hash, successor: r.successor, audit: r.audit)
        let row = try await writing(backend) { db in try await fast(db).first(statement) }
        guard let row else { return [.unknown] }
        // Its single row cannot tell an unknown token from a lost race: both read again, as before.
        return [row.won > 0 ? .won : row.usedAt.map { .usedAt($0) } ?? .lost]
    }

    /// On the refresh writer's connections and thread (`PostgresPools.writer`).
    private static func writing<R: Sendable>(_ backend: any SQLBackend, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        if let pg = backend as? PostgresBackend { return try await pg.runWriting(body) }
        return try await backend.run(body)
    }

    static func many(_ batch: [RotationRequest], backend: any SQLBackend) async throws -> [Outcome] {
        let statement = RefreshRotationBatchStatement(batch: batch)
        let rows = try await writing(backend) { db in try await fast(db).all(statement) }
        var out = [Outcome?](repeating: nil, count: batch.count)
        for row in rows where row.n >= 1 && row.n <= batch.count {
            guard let usedAt = row.usedAt else { out[row.n - 1] = .unknown; continue }
            out[row.n - 1] = row.won ? .won : usedAt < 0 ? .lost : .usedAt(usedAt)
        }
        // One row per request, always; anything else is a fault to report, never a silent "not found".
        guard !out.contains(nil) else {
            throw StorageError.unavailable("the rotation batch answered \(rows.count) rows for \(batch.count) rotations")
        }
        return out.map { $0! }
    }

    private static func fast(_ db: any SQLDatabase) -> FastPostgresDatabase {
        guard let pg = db as? FastPostgresDatabase else {
            preconditionFailure("the PostgreSQL backend hands out FastPostgresDatabase sessions")
        }
        return pg
    }
}

/// One rotation as one prepared statement. `$16` says whether the audit row is written (its values
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

/// Many rotations as one prepared statement: the same four steps over arrays, one element per
/// request (`n` numbers them from 1). Two requests for the same token in one batch: the UPDATE
/// changes the row once, so exactly one of them wins; the other sees no `used_at` in the
/// statement's snapshot and reads again after the commit, like a lost race between statements.
struct RefreshRotationBatchStatement: PostgresPreparedStatement {
    static let name = "portal_refresh_rotation_batch_v2"
    // The arrays reach the planner only through sub-selects, so a custom plan estimates them like the
    // generic one and PostgreSQL settles on its cached generic plan (planning this statement costs
    // ≈ 1.5 ms, more than writing a batch). Every table is reached by its key — `= ANY` of an array,
    // or a lookup per row — and the family check is a per-row sub-select, not a join: as a join, a
    // generic plan made while the tables were small walked each family's whole chain of tokens
    // through `refresh_tokens_family` (7 ms for a batch of 7 at 830 tokens a family, found with
    // auto_explain). Of two requests for one token only the first (lowest n) wins.
    static let sql = """
        WITH input AS MATERIALIZED (
          SELECT * FROM unnest((SELECT $1::int8[]), (SELECT $2::text[]), (SELECT $3::text[]), (SELECT $4::text[]),
                               (SELECT $5::text[]), (SELECT $6::int8[]), (SELECT $7::int8[]), (SELECT $8::int8[]),
                               (SELECT $9::text[]), (SELECT $10::text[]), (SELECT $11::text[]), (SELECT $12::text[]),
                               (SELECT $13::text[]), (SELECT $14::int8[]), (SELECT $15::text[]), (SELECT $16::bool[]))
            WITH ORDINALITY AS i(now, hash, s_hash, s_family, s_client, s_created, s_idle,
                                 a_time, a_type, a_actor, a_subject, a_client, a_address, a_success, a_details, audited, n)),
        used AS (
          UPDATE refresh_tokens t SET used_at = (SELECT i.now FROM input i WHERE i.hash = t.hash ORDER BY i.n LIMIT 1)
          WHERE t.hash = ANY((SELECT $2::text[])::text[]) AND t.used_at IS NULL
            AND (SELECT f.revoked_at IS NULL FROM refresh_families f WHERE f.id = t.family_id)
          RETURNING t.hash, t.family_id),
        won AS MATERIALIZED (
          SELECT DISTINCT ON (i.hash) i.*, u.family_id FROM used u JOIN input i ON i.hash = u.hash ORDER BY i.hash, i.n),
        successor AS (
          INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at, used_at)
          SELECT s_hash, s_family, s_client, s_created, s_idle, NULL FROM won),
        stamp AS (
          UPDATE refresh_families f SET last_used_at = (SELECT max(w.now) FROM won w WHERE w.family_id = f.id)
          WHERE f.id = ANY((SELECT array_agg(family_id) FROM won)::text[])),
        audit AS (
          INSERT INTO audit_events (time, type, actor, subject, client_id, remote_address, success, details_json)
          SELECT a_time, a_type, a_actor, a_subject, a_client, a_address, a_success, a_details FROM won WHERE audited ORDER BY n)
        SELECT i.n, EXISTS (SELECT 1 FROM won w WHERE w.n = i.n) AS won,
               (SELECT coalesce(t.used_at, -1) FROM refresh_tokens t WHERE t.hash = i.hash) AS used_at
        FROM input i
        """
    static let bindingDataTypes: [PostgresDataType] = [
        .int8Array, .textArray, .textArray, .textArray, .textArray, .int8Array, .int8Array,
        .int8Array, .textArray, .textArray, .textArray, .textArray, .textArray, .int8Array, .textArray, .boolArray,
    ]
    /// `usedAt`: nil when the token does not exist, -1 when the statement's snapshot saw it unused.
    typealias Row = (n: Int, won: Bool, usedAt: Int?)

    let batch: [RotationRequest]

    func makeBindings() throws -> PostgresBindings {
        var now: [Int] = [], hash: [String] = [], sHash: [String] = [], sFamily: [String] = [], sClient: [String] = []
        var sCreated: [Int] = [], sIdle: [Int] = []
        var aTime: [Int] = [], aType: [String] = [], aActor: [String] = [], aSubject: [String] = [], aClient: [String] = []
        var aAddress: [String] = [], aSuccess: [Int] = [], aDetails: [String] = [], audited: [Bool] = []
        for r in batch {
            now.append(t(r.now)); hash.append(r.hash)
            let s = r.successor
            sHash.append(s.hash); sFamily.append(s.familyID); sClient.append(s.clientID)
            sCreated.append(t(s.createdAt)); sIdle.append(t(s.idleExpiresAt))
            let e = r.audit
            aTime.append(e.map { t($0.time) } ?? 0); aType.append(e?.type ?? ""); aActor.append(e?.actor ?? "")
            aSubject.append(e?.subject ?? ""); aClient.append(e?.clientID ?? ""); aAddress.append(e?.remoteAddress ?? "")
            aSuccess.append(e.map { $0.success ? 1 : 0 } ?? 0); aDetails.append(e.map { json($0.details) } ?? ""); audited.append(e != nil)
        }
        var b = PostgresBindings(capacity: 16)
        b.append(now); b.append(hash); b.append(sHash); b.append(sFamily); b.append(sClient); b.append(sCreated); b.append(sIdle)
        b.append(aTime); b.append(aType); b.append(aActor); b.append(aSubject); b.append(aClient); b.append(aAddress)
        b.append(aSuccess); b.append(aDetails); b.append(audited)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let (n, won, usedAt) = try row.decode((Int, Bool, Int?).self)
        return (n, won, usedAt)
    }
}

/// A refresh token and its family, as `SQLStorage.refreshToken(hash:)` reads them: prepared on
/// PostgreSQL, where a refresh that lands on a replica that did not issue the token reads it (sent
/// unnamed, parsing and planning the join tripled the server's time for it: `pgbench` 0.094–0.186 ms
/// against 0.034–0.042 prepared). The columns are named, not `f.*`: a prepared statement whose
/// result changes shape (another replica's migration adds a column) fails until it is prepared again.
struct RefreshLookupStatement: PostgresPreparedStatement {
    static let name = "portal_refresh_lookup_v1"
    static let columns = """
        SELECT f.id, f.user_id, f.client_id, f.scopes, f.auth_time, f.auth_method, f.session_id, f.amr, f.created_at,
               f.expires_at, f.last_used_at, f.revoked_at, f.revoke_reason, f.address, f.user_agent, f.purpose, f.label,
               t.hash AS token_hash, t.client_id AS token_client_id, t.created_at AS token_created_at,
               t.idle_expires_at AS token_idle_expires_at, t.used_at AS token_used_at
        FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash =
        """
    static let sql = columns + " $1"
    /// The same text for SQLite, where the hash is bound after it.
    static let sqlite = columns + " "
    static let bindingDataTypes: [PostgresDataType] = [.text]
    typealias Row = FastPostgresRow

    let hash: String

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 1)
        b.append(hash)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { FastPostgresRow(row: row, columns: row.makeRandomAccess()) }
}

extension FastPostgresDatabase {
    /// The first row of a prepared statement (PostgresNIO prepares it on this connection when it has not yet).
    func first<S: PostgresPreparedStatement>(_ statement: S) async throws -> S.Row? {
        let rows = try await connection.execute(statement, logger: logger)
        var first: S.Row?
        for try await row in rows where first == nil { first = row }
        return first
    }

    /// Every row of a prepared statement.
    func all<S: PostgresPreparedStatement>(_ statement: S) async throws -> [S.Row] {
        var out: [S.Row] = []
        for try await row in try await connection.execute(statement, logger: logger) { out.append(row) }
        return out
    }
}
