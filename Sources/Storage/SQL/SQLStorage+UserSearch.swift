import Foundation
import IdP
import SQLKit

// MARK: - Users at the size of a company: search and pages

extension SQLStorage {
    /// `%` and `_` are literal in what a person types: escaped for LIKE (with `\` as the escape).
    static func likePattern(_ text: String) -> String {
        var out = "%"
        for ch in text.lowercased() {
            if ch == "%" || ch == "_" || ch == "\\" { out.append("\\") }
            out.append(ch)
        }
        return out + "%"
    }

    public func searchUsers(_ query: String, limit: Int, offset: Int) async throws -> UserPage {
        let q = query.trimmingCharacters(in: .whitespacesAndNewlines)
        let pattern = Self.likePattern(q)
        let limit = max(1, min(limit, 500)), offset = max(0, offset)
        return try await run { db in
            let filter: SQLQueryString = q.isEmpty ? "" : """
                WHERE LOWER(username) LIKE \(bind: pattern) ESCAPE '\\' OR LOWER(display_name) LIKE \(bind: pattern) ESCAPE '\\'
                   OR LOWER(email) LIKE \(bind: pattern) ESCAPE '\\' OR LOWER(groups_json) LIKE \(bind: pattern) ESCAPE '\\'
                """
            let total = try await db.raw("SELECT COUNT(*) AS n FROM users " + filter).first().map { try $0.i("n") } ?? 0
            let rows = try await db.raw("SELECT * FROM users " + filter + " ORDER BY username LIMIT \(bind: limit) OFFSET \(bind: offset)").all()
            return UserPage(users: try rows.map(Self.user), total: Int(total))
        }
    }
}
