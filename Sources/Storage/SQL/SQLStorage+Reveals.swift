import Foundation
import IdP
import SQLKit

// MARK: - One-time reveals

extension SQLStorage {
    public func createReveal(_ r: Reveal) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO reveals (id, browser_hash, kind, sealed, created_at, expires_at)
                VALUES (\(bind: r.id), \(bind: r.browserHash), \(bind: r.kind), \(bind: r.sealed), \(bind: t(r.createdAt)), \(bind: t(r.expiresAt)))
                """).run()
        }
    }

    /// One statement: the row is gone for everyone the moment one caller has it. On PostgreSQL a
    /// concurrent DELETE of the same row waits for the first to commit and then deletes nothing;
    /// SQLite has one writer. Only the browser (and person) it was made for can take it: anyone
    /// else's attempt matches no row and leaves it for its owner.
    public func takeReveal(id: String, browserHash: String, now: Date) async throws -> Reveal? {
        let n = t(now)
        return try await run { db in
            guard let r = try await db.raw("""
                DELETE FROM reveals WHERE id = \(bind: id) AND browser_hash = \(bind: browserHash)
                RETURNING id, browser_hash, kind, sealed, created_at, expires_at
                """).first()
            else { return nil }
            guard try r.i("expires_at") > n else { return nil }  // expired: deleted all the same
            return Reveal(id: try r.s("id"), browserHash: try r.s("browser_hash"), kind: try r.s("kind"), sealed: try r.s("sealed"),
                          createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"))
        }
    }
}
