import Foundation
import IdP
import SQLKit

// MARK: - Second factors, recovery codes, WebAuthn challenges

extension SQLStorage {
    static func factor(_ r: any SQLRow) throws -> Factor {
        Factor(id: try r.s("id"), userID: try r.s("user_id"), kind: Factor.Kind(rawValue: try r.s("kind")) ?? .totp, name: try r.s("name"),
               credentialID: try r.s("credential_id"), publicKey: try r.s("public_key"), signCount: try r.i("sign_count"),
               backupEligible: try r.b("backup_eligible"), sealedSecret: try r.s("sealed_secret"), lastStep: try r.i("last_step"),
               confirmed: try r.b("confirmed"), createdAt: try r.d("created_at"), lastUsedAt: try r.od("last_used_at"))
    }

    public func createFactor(_ f: Factor) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO factors (id, user_id, kind, name, credential_id, public_key, sign_count, backup_eligible, sealed_secret,
                                     last_step, confirmed, created_at, last_used_at)
                VALUES (\(bind: f.id), \(bind: f.userID), \(bind: f.kind.rawValue), \(bind: f.name), \(bind: f.credentialID),
                        \(bind: f.publicKey), \(bind: f.signCount), \(bind: f.backupEligible ? 1 : 0), \(bind: f.sealedSecret),
                        \(bind: f.lastStep), \(bind: f.confirmed ? 1 : 0), \(bind: t(f.createdAt)), \(bind: t(f.lastUsedAt)))
                """).run()
        }
    }

    public func factors(userID: String) async throws -> [Factor] {
        try await read { db in
            try await db.raw("SELECT * FROM factors WHERE user_id = \(bind: userID) ORDER BY created_at, id LIMIT 200").all().map(Self.factor)
        }
    }

    public func factor(id: String) async throws -> Factor? {
        try await read { db in try await db.raw("SELECT * FROM factors WHERE id = \(bind: id)").first().map(Self.factor) }
    }

    public func factor(credentialID: String) async throws -> Factor? {
        try await read { db in
            try await db.raw("SELECT * FROM factors WHERE credential_id = \(bind: credentialID) AND kind = 'passkey'").first().map(Self.factor)
        }
    }

    public func confirmFactor(id: String, userID: String, name: String, step: Int, now: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE factors SET confirmed = 1, name = \(bind: name), last_step = \(bind: step), last_used_at = \(bind: t(now))
                WHERE id = \(bind: id) AND user_id = \(bind: userID) AND confirmed = 0 RETURNING id
                """).first() != nil
        }
    }

    public func useTOTP(id: String, step: Int, now: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE factors SET last_step = \(bind: step), last_used_at = \(bind: t(now))
                WHERE id = \(bind: id) AND kind = 'totp' AND confirmed = 1 AND last_step < \(bind: step) RETURNING id
                """).first() != nil
        }
    }

    public func usePasskey(id: String, previous: Int, signCount: Int, now: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE factors SET sign_count = \(bind: signCount), last_used_at = \(bind: t(now))
                WHERE id = \(bind: id) AND kind = 'passkey' AND sign_count = \(bind: previous) RETURNING id
                """).first() != nil
        }
    }

    public func renameFactor(id: String, userID: String, name: String) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE factors SET name = \(bind: name) WHERE id = \(bind: id) AND user_id = \(bind: userID) AND confirmed = 1 RETURNING id
                """).first() != nil
        }
    }

    public func deleteFactor(id: String, userID: String) async throws -> Bool {
        try await run { db in
            try await db.raw("DELETE FROM factors WHERE id = \(bind: id) AND user_id = \(bind: userID) RETURNING id").first() != nil
        }
    }

    public func deleteFactors(userID: String) async throws -> Int {
        try await tx { db in
            try await db.raw("DELETE FROM recovery_codes WHERE user_id = \(bind: userID)").run()
            try await db.raw("DELETE FROM mfa_grace WHERE user_id = \(bind: userID)").run()
            let removed = try await db.raw("DELETE FROM factors WHERE user_id = \(bind: userID) AND confirmed = 1 RETURNING id").all().count
            try await db.raw("DELETE FROM factors WHERE user_id = \(bind: userID)").run()
            return removed
        }
    }

    public func replaceRecoveryCodes(userID: String, hashes: [String], now: Date) async throws {
        try await tx { db in
            try await db.raw("DELETE FROM recovery_codes WHERE user_id = \(bind: userID)").run()
            for h in hashes {
                try await db.raw("""
                    INSERT INTO recovery_codes (hash, user_id, created_at, used_at) VALUES (\(bind: h), \(bind: userID), \(bind: t(now)), NULL)
                    """).run()
            }
        }
    }

    public func useRecoveryCode(userID: String, hash: String, now: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE recovery_codes SET used_at = \(bind: t(now))
                WHERE hash = \(bind: hash) AND user_id = \(bind: userID) AND used_at IS NULL RETURNING hash
                """).first() != nil
        }
    }

    public func recoveryCodesLeft(userID: String) async throws -> Int {
        try await read { db in
            try await db.raw("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = \(bind: userID) AND used_at IS NULL").first()?.i("n") ?? 0
        }
    }

    public func createChallenge(_ c: WebAuthnChallenge) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO webauthn_challenges (hash, browser_hash, user_id, purpose, expires_at)
                VALUES (\(bind: c.hash), \(bind: c.browserHash), \(bind: c.userID), \(bind: c.purpose), \(bind: t(c.expiresAt)))
                """).run()
        }
    }

    public func takeChallenge(hash: String, browserHash: String, now: Date) async throws -> WebAuthnChallenge? {
        try await run { db in
            guard let r = try await db.raw("""
                DELETE FROM webauthn_challenges WHERE hash = \(bind: hash) AND browser_hash = \(bind: browserHash)
                RETURNING hash, browser_hash, user_id, purpose, expires_at
                """).first() else { return nil }
            let c = WebAuthnChallenge(hash: try r.s("hash"), browserHash: try r.s("browser_hash"), userID: try r.s("user_id"),
                                      purpose: try r.s("purpose"), expiresAt: try r.d("expires_at"))
            return c.expiresAt > now ? c : nil
        }
    }

    public func mfaGraceStart(userID: String, now: Date) async throws -> Date {
        try await tx { db in
            if let r = try await db.raw("SELECT started_at FROM mfa_grace WHERE user_id = \(bind: userID)").first() {
                return try r.d("started_at")
            }
            try await db.raw("INSERT INTO mfa_grace (user_id, started_at) VALUES (\(bind: userID), \(bind: t(now))) ON CONFLICT (user_id) DO NOTHING").run()
            return try await db.raw("SELECT started_at FROM mfa_grace WHERE user_id = \(bind: userID)").first()?.d("started_at") ?? now
        }
    }

    public func markSessionFactor(hash: String, amr: [String], at: Date) async throws {
        try await run { db in
            try await db.raw("""
                UPDATE login_sessions SET amr = \(bind: AMR.encode(amr)), factor_at = \(bind: t(at)) WHERE hash = \(bind: hash)
                """).run()
        }
    }
}
