import Foundation
import IdP
import SQLKit
@testable import Storage
import Testing

@Suite("Schema migrations and data copy")
struct SchemaMigrationTests {
    /// A database left by the previous release (schema version 3), with a live family and its
    /// token, is upgraded in place on start: the family keeps working and came from "" and "".
    @Test(arguments: Backends.all)
    func upgradingFromVersion3KeepsExistingFamilies(_ backend: Backend) async throws {
        try await backend.withEmptyDatabase { db async throws in
            try await Migrations.apply(db, now: Fixture.t0, through: 3)
            let tokenHash = Fixture.hash()
            try await db.transaction { sql in
                try await sql.raw("""
                    INSERT INTO refresh_families (id, user_id, client_id, scopes, auth_time, auth_method, created_at, expires_at, last_used_at)
                    VALUES ('old-family', 'user-1', 'kubernetes', '["openid","groups","offline_access"]', \(bind: t(Fixture.t0)),
                            'password', \(bind: t(Fixture.t0)), \(bind: t(Fixture.t0) + 43200), \(bind: t(Fixture.t0)))
                    """).run()
                try await sql.raw("""
                    INSERT INTO refresh_tokens (hash, family_id, client_id, created_at, idle_expires_at)
                    VALUES (\(bind: tokenHash), 'old-family', 'kubernetes', \(bind: t(Fixture.t0)), \(bind: t(Fixture.t0) + 900))
                    """).run()
                // A browser session a day old (version 5 adds its sid and idle clock).
                try await sql.raw("""
                    INSERT INTO login_sessions (hash, user_id, auth_time, auth_method, created_at, expires_at)
                    VALUES ('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'user-1', 1, 'password', 1, \(bind: Int(Date().timeIntervalSince1970) + 3600))
                    """).run()
            }

            let store = try await SQLStorage.open(db, now: Fixture.t0 + 60)
            let versions = try await db.run { sql in
                try await sql.raw("SELECT version FROM schema_migrations ORDER BY version").all().map { try $0.i("version") }
            }
            #expect(versions == Array(1...Migrations.all(db.flavor).count))

            let family = try #require(try await store.family(id: "old-family"))
            #expect(family == RefreshFamily(id: "old-family", grant: Fixture.grant(userID: "user-1"), createdAt: Fixture.t0,
                                            expiresAt: Fixture.t0 + 43200))
            #expect(family.address == "" && family.userAgent == "")
            // The old browser session gets a public id and counts its activity from the upgrade, not its start:
            // an upgrade signs nobody out.
            let session = try #require(try await store.session(sid: "0123456789abcdef0123456789abcdef"))
            #expect(session.userID == "user-1" && abs(session.lastSeenAt.timeIntervalSinceNow) < 120)
            #expect(try await store.activeFamilies(userID: "user-1", now: Fixture.t0 + 60).map(\.id) == ["old-family"])
            let successor = Fixture.token(familyID: "old-family", at: Fixture.t0 + 60)
            #expect(try await store.rotateRefreshToken(hash: tokenHash, now: Fixture.t0 + 60, successor: successor) == .rotated)

            // The new table is there, and a second start changes nothing.
            let r = RevealStoreConformance.reveal()
            try await store.createReveal(r)
            _ = try await SQLStorage.open(db, now: Fixture.t0 + 120)
            #expect(try await store.takeReveal(id: r.id, browserHash: r.browserHash, now: Fixture.t0 + 60) == r)
        }
    }

    @Test func theCopyKnowsColumnsAddedLaterAndLeavesRevealsBehind() throws {
        let tables = DataCopy.tables()
        let families = try #require(tables.first { $0.name == "refresh_families" })
        #expect(families.columns.map(\.0).suffix(6) == ["address", "user_agent", "session_id", "purpose", "label", "amr"])
        #expect(!tables.contains { $0.name == "logout_deliveries" }, "pending logouts belong to the running portal")
        #expect(!tables.contains { $0.name == "webauthn_challenges" }, "challenges belong to the browser that asked")
        #expect(tables.contains { $0.name == "factors" } && tables.contains { $0.name == "recovery_codes" }, "second factors are data")
        #expect(families.columns.first { $0.0 == "user_agent" }?.1 == false, "TEXT, not an integer")
        #expect(!tables.contains { $0.name == "reveals" })
        #expect(DataCopy.addedColumn("ALTER TABLE t ADD COLUMN c BIGINT NOT NULL DEFAULT 0")! == ("t", "c BIGINT NOT NULL DEFAULT 0"))
        #expect(DataCopy.addedColumn("ALTER TABLE t ADD c TEXT")! == ("t", "c TEXT"))
        #expect(DataCopy.addedColumn("CREATE INDEX x ON t (c)") == nil)
    }

    /// backup / restore / migrate: families arrive with where they came from; reveals stay behind.
    @Test(arguments: Backends.all)
    func copyingCarriesFamilyOriginsAndNoReveals(_ backend: Backend) async throws {
        let source = try await Backends.sqlite.make()
        do {
            try await Self.copyFamilyAndReveal(from: source.store, to: backend)
            await source.dispose()
        } catch {
            await source.dispose()
            throw error
        }
    }

    static func copyFamilyAndReveal(from source: any Storage, to backend: Backend) async throws {
        let from = try #require(source as? SQLStorage)
        var family = Fixture.family()
        family.address = "198.51.100.7"
        family.userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
        try await from.startFamily(family, firstToken: Fixture.token(familyID: family.id))
        let reveal = RevealStoreConformance.reveal()
        try await from.createReveal(reveal)

        try await backend.withStore { store async throws in
            let to = try #require(store as? SQLStorage)
            let summary = try await DataCopy.copy(from: from, to: to, replace: false)
            #expect(summary.rows.contains { $0.table == "refresh_families" && $0.count == 1 })
            #expect(!summary.rows.contains { $0.table == "reveals" })
            #expect(try await to.family(id: family.id) == family)
            #expect(try await to.takeReveal(id: reveal.id, browserHash: reveal.browserHash, now: Fixture.t0) == nil)
        }
        #expect(try await from.takeReveal(id: reveal.id, browserHash: reveal.browserHash, now: Fixture.t0) == reveal, "the source keeps its reveal")
    }
}
