import Foundation
import IdP
import SQLKit

// MARK: - Keys, leases, named secrets

extension SQLStorage {
    static func key(_ r: any SQLRow) throws -> SigningKeyRecord {
        guard let alg = SigningAlgorithm(rawValue: try r.s("algorithm")) else { throw StorageError.unavailable("unknown key algorithm") }
        return SigningKeyRecord(kid: try r.s("kid"), algorithm: alg, sealedPrivateKey: try r.s("sealed_private_key"),
                                publicJWK: try r.s("public_jwk"), createdAt: try r.d("created_at"), activatesAt: try r.d("activates_at"),
                                retiresAt: try r.od("retires_at"), expiresAt: try r.od("expires_at"))
    }

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await run { db in try await db.raw("SELECT * FROM signing_keys ORDER BY activates_at, created_at").all().map(Self.key) }
    }

    public func insertSigningKey(_ k: SigningKeyRecord) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO signing_keys (kid, algorithm, sealed_private_key, public_jwk, created_at, activates_at, retires_at, expires_at)
                VALUES (\(bind: k.kid), \(bind: k.algorithm.rawValue), \(bind: k.sealedPrivateKey), \(bind: k.publicJWK),
                        \(bind: t(k.createdAt)), \(bind: t(k.activatesAt)), \(bind: t(k.retiresAt)), \(bind: t(k.expiresAt)))
                """).run()
        }
    }

    public func updateSigningKey(_ k: SigningKeyRecord) async throws {
        let found = try await run { db in
            try await db.raw("""
                UPDATE signing_keys SET sealed_private_key = \(bind: k.sealedPrivateKey), activates_at = \(bind: t(k.activatesAt)),
                  retires_at = \(bind: t(k.retiresAt)), expires_at = \(bind: t(k.expiresAt))
                WHERE kid = \(bind: k.kid) RETURNING kid
                """).first() != nil
        }
        if !found { throw StorageError.notFound("signing key \(k.kid)") }
    }

    public func deleteSigningKey(kid: String) async throws {
        try await run { db in try await db.raw("DELETE FROM signing_keys WHERE kid = \(bind: kid)").run() }
    }

    public func acquireLease(name: String, holder: String, now: Date, until: Date) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                INSERT INTO leases (name, holder, until_at) VALUES (\(bind: name), \(bind: holder), \(bind: t(until)))
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_at = excluded.until_at
                WHERE leases.until_at <= \(bind: t(now)) OR leases.holder = \(bind: holder)
                RETURNING holder
                """).first() != nil
        }
    }

    public func releaseLease(name: String, holder: String) async throws {
        try await run { db in
            try await db.raw("UPDATE leases SET until_at = 0 WHERE name = \(bind: name) AND holder = \(bind: holder)").run()
        }
    }

    public func namedSecret(_ name: String, proposed: String) async throws -> String {
        try await tx { db in
            try await db.raw("INSERT INTO named_secrets (name, value) VALUES (\(bind: name), \(bind: proposed)) ON CONFLICT (name) DO NOTHING").run()
            guard let r = try await db.raw("SELECT value FROM named_secrets WHERE name = \(bind: name)").first() else {
                throw StorageError.notFound("secret \(name)")
            }
            return try r.s("value")
        }
    }

    public func replaceNamedSecret(_ name: String, old: String, new: String) async throws -> Bool {
        try await run { db in
            try await db.raw("UPDATE named_secrets SET value = \(bind: new) WHERE name = \(bind: name) AND value = \(bind: old) RETURNING name")
                .first() != nil
        }
    }
}
