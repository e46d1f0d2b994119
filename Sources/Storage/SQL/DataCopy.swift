import Foundation
import IdP
import SQLKit

/// Copies every record from one database to another — SQLite or PostgreSQL on either side —
/// for `portal backup`, `restore` and `migrate`. The source is read in one transaction (one
/// consistent snapshot: a backup taken under refresh traffic has exactly one live token per
/// family); the target is written in one transaction (all or nothing). Sealed signing keys,
/// shared secrets, refresh families, credentials and the audit log move as they are, so
/// kubectl sessions and robots keep working across the move (with the same key-encryption key).
public enum DataCopy {
    struct Table: Equatable {
        let name: String
        /// (column, is an integer)
        let columns: [(String, Bool)]
        static func == (a: Table, b: Table) -> Bool { a.name == b.name && a.columns.map(\.0) == b.columns.map(\.0) }
    }

    /// Tables not copied: the schema version is the target's own; leases are held by running processes;
    /// reveals are single-use secrets that live minutes — a restored copy could be shown a second time;
    /// back-channel logouts pending delivery and device sign-ins in progress belong to the running portal.
    static let skipped: Set<String> = ["schema_migrations", "leases", "reveals", "logout_deliveries", "device_grants", "webauthn_challenges", "change_epochs"]

    /// Every table and column as the migrations declare them (TEXT and BIGINT only, by design):
    /// `CREATE TABLE`, then the columns later versions add with `ALTER TABLE … ADD COLUMN`.
    static func tables() -> [Table] {
        var out: [Table] = []
        for (_, statements) in Migrations.all(.sqlite) {
            for s in statements {
                let flat = s.replacingOccurrences(of: "\n", with: " ")
                if let (name, def) = addedColumn(flat) {
                    guard !skipped.contains(name) else { continue }
                    guard let i = out.firstIndex(where: { $0.name == name }) else {
                        preconditionFailure("migration adds a column to \(name), which no earlier migration creates")
                    }
                    out[i] = Table(name: name, columns: out[i].columns + column(def))
                    continue
                }
                guard flat.hasPrefix("CREATE TABLE "), let open = flat.firstIndex(of: "("), let close = flat.lastIndex(of: ")") else { continue }
                let name = flat[flat.index(flat.startIndex, offsetBy: 13)..<open].trimmingCharacters(in: .whitespaces)
                guard !skipped.contains(name) else { continue }
                var columns: [(String, Bool)] = []
                var depth = 0, current = ""
                for ch in flat[flat.index(after: open)..<close] {
                    if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
                    if ch == "," && depth == 0 { columns.append(contentsOf: column(current)); current = "" } else { current.append(ch) }
                }
                columns.append(contentsOf: column(current))
                out.append(Table(name: name, columns: columns))
            }
        }
        return out
    }

    /// ("table", "column TYPE …") for `ALTER TABLE table ADD [COLUMN] column TYPE …`; nil for anything else.
    static func addedColumn(_ statement: String) -> (String, String)? {
        let words = statement.split(separator: " ").map(String.init)
        guard words.count >= 6, words[0].uppercased() == "ALTER", words[1].uppercased() == "TABLE", words[3].uppercased() == "ADD"
        else { return nil }
        let rest = words[4].uppercased() == "COLUMN" ? words[5...] : words[4...]
        return (words[2], rest.joined(separator: " "))
    }

    static func column(_ def: String) -> [(String, Bool)] {
        let words = def.split(separator: " ").map(String.init)
        guard words.count >= 2, !["PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"].contains(words[0].uppercased()) else { return [] }
        return [(words[0], words[1].uppercased() != "TEXT")]
    }

    public struct Summary: Sendable, CustomStringConvertible {
        public var rows: [(table: String, count: Int)]
        public var total: Int { rows.reduce(0) { $0 + $1.count } }
        public var description: String { rows.filter { $0.count > 0 }.map { "\($0.table) \($0.count)" }.joined(separator: ", ") }
    }

    public struct TargetNotEmpty: Error, CustomStringConvertible {
        public let tables: [String]
        public var description: String {
            "the target database is not empty (\(tables.joined(separator: ", "))); use --force to replace everything in it"
        }
    }

    enum Value: Sendable {
        case int(Int?), text(String?)
    }

    /// Rows of every table, read in one transaction.
    static func snapshot(_ source: SQLStorage) async throws -> [(Table, [[Value]])] {
        let tables = tables()
        let postgres = source.backend.flavor == .postgres
        let read: @Sendable (any SQLDatabase) async throws -> [(Table, [[Value]])] = { db in
            var out: [(Table, [[Value]])] = []
            for t in tables {
                let cols = t.columns.map(\.0).joined(separator: ", ")
                let rows = try await db.raw(SQLQueryString("SELECT \(unsafeRaw: cols) FROM \(unsafeRaw: t.name) ORDER BY 1")).all()
                out.append((t, try rows.map { r in
                    try t.columns.map { c, isInt in isInt ? .int(try r.decode(column: c, as: Int?.self)) : .text(try r.decode(column: c, as: String?.self)) }
                }))
            }
            return out
        }
        if postgres {
            return try await source.backend.transaction { db in
                try await db.raw("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").run()
                return try await read(db)
            }
        }
        // SQLite: a deferred read transaction is one snapshot (WAL), and a running server keeps writing meanwhile.
        return try await source.backend.run { db in try await inTransaction(db, read) }
    }

    /// Copies everything from `source` into `target` (both migrated). Refuses a target that
    /// holds any record unless `replace`, which empties it first — in the same transaction.
    public static func copy(from source: SQLStorage, to target: SQLStorage, replace: Bool) async throws -> Summary {
        let data = try await snapshot(source)
        let postgres = target.backend.flavor == .postgres
        try await target.backend.transaction { db in
            var occupied: [String] = []
            for (t, _) in data {
                if try await db.raw(SQLQueryString("SELECT 1 AS one FROM \(unsafeRaw: t.name) LIMIT 1")).first() != nil { occupied.append(t.name) }
            }
            if !occupied.isEmpty {
                guard replace else { throw TargetNotEmpty(tables: occupied) }
                for (t, _) in data.reversed() { try await db.raw(SQLQueryString("DELETE FROM \(unsafeRaw: t.name)")).run() }
            }
            for (t, rows) in data {
                let cols = t.columns.map(\.0).joined(separator: ", ")
                for row in rows {
                    var q = SQLQueryString("INSERT INTO \(unsafeRaw: t.name) (\(unsafeRaw: cols)) VALUES (")
                    for (i, v) in row.enumerated() {
                        if i > 0 { q.appendInterpolation(unsafeRaw: ", ") }
                        switch v {
                        case .int(let x): q.appendInterpolation(bind: x)
                        case .text(let x): q.appendInterpolation(bind: x)
                        }
                    }
                    q.appendInterpolation(unsafeRaw: ")")
                    try await db.raw(q).run()
                }
            }
            if postgres {
                // Copied ids must not be handed out again by the sequence.
                try await db.raw("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), COALESCE((SELECT MAX(id) FROM audit_events), 0) + 1, false)").run()
            }
        }
        return Summary(rows: data.map { ($0.0.name, $0.1.count) })
    }
}
