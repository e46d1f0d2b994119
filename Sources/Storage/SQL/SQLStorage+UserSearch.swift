import Foundation
import IdP
import SQLKit

// MARK: - Users at the size of a company: search and pages

extension SQLStorage {
    /// `%` and `_` are literal in what a person types: escaped for LIKE (with `\` as the escape).
    static func likePattern(_ text: String, lowercase: Bool = true) -> String {
        var out = "%"
        for ch in lowercase ? text.lowercased() : text {
            if ch == "%" || ch == "_" || ch == "\\" { out.append("\\") }
            out.append(ch)
        }
        return out + "%"
    }

    /// Matches each column lowered (LOWER folds only ASCII on SQLite, all of Unicode on PostgreSQL)
    /// and as typed (so "Łukasz" finds "Łukasz" on SQLite too). Groups are searched in their JSON
    /// text only when the query has none of JSON's own characters (`"`, `[`, `]`, `,`, `\`).
    public func searchUsers(_ query: String, limit: Int, offset: Int) async throws -> UserPage {
        let q = query.trimmingCharacters(in: .whitespacesAndNewlines)
        let lower = Self.likePattern(q), typed = Self.likePattern(q, lowercase: false)
        let limit = max(1, min(limit, 500)), offset = max(0, min(offset, 100_000_000))
        let groups = !q.contains { "\"[],\\".contains($0) }
        return try await run { db in
            func match(_ column: String) -> SQLQueryString {
                "(LOWER(\(unsafeRaw: column)) LIKE \(bind: lower) ESCAPE '\\' OR \(unsafeRaw: column) LIKE \(bind: typed) ESCAPE '\\')"
            }
            var filter: SQLQueryString = ""
            if !q.isEmpty {
                filter = "WHERE " + match("username") + " OR " + match("display_name") + " OR " + match("email")
                if groups { filter = filter + " OR " + match("groups_json") }
            }
            let total = try await db.raw("SELECT COUNT(*) AS n FROM users " + filter).first().map { try $0.i("n") } ?? 0
            let rows = try await db.raw("SELECT * FROM users " + filter + " ORDER BY username LIMIT \(bind: limit) OFFSET \(bind: offset)").all()
            return UserPage(users: try rows.map(Self.user), total: Int(total))
        }
    }
}
