import Foundation
import IdP
import SQLKit

extension SQLStorage {
    static func credential(_ r: any SQLRow) throws -> ApplicationCredential {
        let groups: [String]? = try r.os("groups_json").map(stringList)
        return ApplicationCredential(
            id: try r.s("id"), ownerKind: ApplicationCredential.OwnerKind(rawValue: try r.s("owner_kind")) ?? .user,
            ownerID: try r.s("owner_id"), ownerMethod: try r.s("owner_method"), name: try r.s("name"),
            description: try r.s("description"), secretHash: try r.s("secret_hash"), previousSecretHash: try r.os("previous_secret_hash"),
            previousExpiresAt: try r.od("previous_expires_at"), groups: groups, createdAt: try r.d("created_at"),
            expiresAt: try r.d("expires_at"), lastUsedAt: try r.od("last_used_at"), revokedAt: try r.od("revoked_at"),
            createdBy: try r.s("created_by"))
    }

    public func createCredential(_ c: ApplicationCredential) async throws {
        let groups = c.groups.map { json($0) }
        try await changingCredentials { try await run { db in
            try await db.raw("""
                INSERT INTO app_credentials (id, owner_kind, owner_id, owner_method, name, description, secret_hash, previous_secret_hash,
                  previous_expires_at, groups_json, created_at, expires_at, last_used_at, revoked_at, created_by)
                VALUES (\(bind: c.id), \(bind: c.ownerKind.rawValue), \(bind: c.ownerID), \(bind: c.ownerMethod), \(bind: c.name),
                        \(bind: c.description), \(bind: c.secretHash), \(bind: c.previousSecretHash), \(bind: t(c.previousExpiresAt)),
                        \(bind: groups), \(bind: t(c.createdAt)), \(bind: t(c.expiresAt)), \(bind: t(c.lastUsedAt)), \(bind: t(c.revokedAt)),
                        \(bind: c.createdBy))
                """).run()
        } }
    }

    public func credential(id: String) async throws -> ApplicationCredential? {
        try await read { db in try await db.raw("SELECT * FROM app_credentials WHERE id = \(bind: id)").first().map(Self.credential) }
    }

    public func credentialWithRobot(id: String) async throws -> (ApplicationCredential, Robot?)? {
        try await read { db in
            guard let r = try await db.raw("""
                SELECT c.*, r.id AS robot_id, r.name AS robot_name, r.team AS robot_team, r.description AS robot_description,
                       r.groups_json AS robot_groups_json, r.disabled AS robot_disabled, r.created_at AS robot_created_at,
                       r.created_by AS robot_created_by
                FROM app_credentials c LEFT JOIN robots r ON c.owner_kind = 'robot' AND r.id = c.owner_id
                WHERE c.id = \(bind: id)
                """).first() else { return nil }
            let credential = try Self.credential(r)
            guard let robotID = try r.os("robot_id") else { return (credential, nil) }
            let robot = Robot(id: robotID, name: try r.s("robot_name"), team: try r.s("robot_team"), description: try r.s("robot_description"),
                              groups: try r.list("robot_groups_json"), disabled: try r.b("robot_disabled"),
                              createdAt: try r.d("robot_created_at"), createdBy: try r.s("robot_created_by"))
            return (credential, robot)
        }
    }

    public func listCredentials(ownerID: String?, includeRevoked: Bool) async throws -> [ApplicationCredential] {
        try await run { db in
            var sql = SQLQueryString("SELECT * FROM app_credentials WHERE 1 = 1")
            if let ownerID { sql.appendInterpolation(unsafeRaw: " AND owner_id = "); sql.appendInterpolation(bind: ownerID) }
            if !includeRevoked { sql.appendInterpolation(unsafeRaw: " AND revoked_at IS NULL") }
            sql.appendInterpolation(unsafeRaw: " ORDER BY created_at DESC, id")
            return try await db.raw(sql).all().map(Self.credential)
        }
    }

    public func rotateCredential(id: String, newSecretHash: String, previousValidUntil: Date, now: Date) async throws -> ApplicationCredential? {
        try await changingCredentials { try await run { db in
            try await db.raw("""
                UPDATE app_credentials SET previous_secret_hash = secret_hash, previous_expires_at = \(bind: t(previousValidUntil)),
                  secret_hash = \(bind: newSecretHash)
                WHERE id = \(bind: id) AND revoked_at IS NULL AND expires_at > \(bind: t(now))
                RETURNING *
                """).first().map(Self.credential)
        } }
    }

    public func revokeCredential(id: String, now: Date) async throws -> Bool {
        try await changingCredentials { try await run { db in
            try await db.raw("UPDATE app_credentials SET revoked_at = \(bind: t(now)) WHERE id = \(bind: id) AND revoked_at IS NULL RETURNING id")
                .first() != nil
        } }
    }

    public func revokeCredentials(ownerID: String, now: Date) async throws -> Int {
        try await changingCredentials { try await run { db in
            try await db.raw("""
                UPDATE app_credentials SET revoked_at = \(bind: t(now))
                WHERE owner_id = \(bind: ownerID) AND revoked_at IS NULL RETURNING id
                """).all().count
        } }
    }

    public func touchCredentials(_ lastUsed: [String: Date]) async throws {
        guard !lastUsed.isEmpty else { return }
        try await tx { db in
            for (id, at) in lastUsed {
                try await db.raw("""
                    UPDATE app_credentials SET last_used_at = \(bind: t(at))
                    WHERE id = \(bind: id) AND (last_used_at IS NULL OR last_used_at < \(bind: t(at)))
                    """).run()
            }
        }
    }

    static func robot(_ r: any SQLRow) throws -> Robot {
        Robot(id: try r.s("id"), name: try r.s("name"), team: try r.s("team"), description: try r.s("description"),
              groups: try r.list("groups_json"), disabled: try r.b("disabled"), createdAt: try r.d("created_at"),
              createdBy: try r.s("created_by"))
    }

    public func createRobot(_ r: Robot) async throws {
        try await changingCredentials { try await run { db in
            try await db.raw("""
                INSERT INTO robots (id, name, team, description, groups_json, disabled, created_at, created_by)
                VALUES (\(bind: r.id), \(bind: r.name), \(bind: r.team), \(bind: r.description), \(bind: json(r.groups)),
                        \(bind: r.disabled ? 1 : 0), \(bind: t(r.createdAt)), \(bind: r.createdBy))
                """).run()
        } }
    }

    public func robot(id: String) async throws -> Robot? {
        try await read { db in try await db.raw("SELECT * FROM robots WHERE id = \(bind: id)").first().map(Self.robot) }
    }

    public func robot(name: String) async throws -> Robot? {
        try await read { db in try await db.raw("SELECT * FROM robots WHERE name = \(bind: name)").first().map(Self.robot) }
    }

    public func listRobots() async throws -> [Robot] {
        try await run { db in try await db.raw("SELECT * FROM robots ORDER BY name").all().map(Self.robot) }
    }

    public func setRobotDisabled(id: String, disabled: Bool) async throws -> Bool {
        try await changingCredentials { try await run { db in
            try await db.raw("UPDATE robots SET disabled = \(bind: disabled ? 1 : 0) WHERE id = \(bind: id) RETURNING id").first() != nil
        } }
    }

    public func deleteRobot(id: String) async throws -> Bool {
        try await changingCredentials { try await run { db in try await db.raw("DELETE FROM robots WHERE id = \(bind: id) RETURNING id").first() != nil } }
    }
}
