import Foundation
import IdP

/// Records the conformance tests store. Times are whole seconds: storage keeps Unix seconds.
enum Fixture {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func hash() -> String { Secrets.sha256Hex(UUID().uuidString) }

    static func user(id: String = UUID().uuidString, username: String, groups: [String] = [], isAdmin: Bool = false,
                     disabled: Bool = false, at time: Date = t0) -> User {
        User(id: id, username: username, displayName: username.capitalized, email: "\(username)@example.com", emailVerified: true,
             groups: groups, isAdmin: isAdmin, disabled: disabled, passwordHash: "fake$" + username, createdAt: time)
    }

    static func client(id: String, isPublic: Bool = false) -> Client {
        Client(id: id, name: "Client \(id)", redirectURIs: ["https://\(id).example.com/callback", "http://localhost:8000"],
               isPublic: isPublic, secretHash: isPublic ? nil : "sha256$salt$\(Secrets.sha256Hex(id))", createdAt: t0)
    }

    static func grant(userID: String, clientID: String = "kubernetes", at time: Date = t0) -> Grant {
        Grant(userID: userID, clientID: clientID, scopes: ["openid", "groups", "offline_access"], authTime: time, authMethod: "password")
    }

    static func code(hash: String = hash(), userID: String = "user-1", at time: Date = t0, ttl: TimeInterval = 60) -> AuthorizationCode {
        AuthorizationCode(hash: hash, grant: grant(userID: userID, at: time), redirectURI: "http://localhost:8000", nonce: "nonce-1",
                          codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", createdAt: time, expiresAt: time + ttl)
    }

    static func family(id: String = UUID().uuidString, userID: String = "user-1", at time: Date = t0,
                       lifetime: TimeInterval = 12 * 3600) -> RefreshFamily {
        RefreshFamily(id: id, grant: grant(userID: userID, at: time), createdAt: time, expiresAt: time + lifetime)
    }

    static func token(hash: String = hash(), familyID: String, at time: Date = t0, idle: TimeInterval = 900) -> RefreshToken {
        RefreshToken(hash: hash, familyID: familyID, clientID: "kubernetes", createdAt: time, idleExpiresAt: time + idle)
    }

    /// A family and its first token, created the only way the contract allows: by redeeming a code.
    static func startFamily(in store: any Storage, userID: String = "user-1", at time: Date = t0,
                            lifetime: TimeInterval = 12 * 3600) async throws -> (RefreshFamily, RefreshToken) {
        let code = code(userID: userID, at: time)
        try await store.createCode(code)
        let family = family(userID: userID, at: time, lifetime: lifetime)
        let first = token(familyID: family.id, at: time)
        let outcome = try await store.redeemCode(hash: code.hash, now: time, family: family, firstToken: first)
        precondition(outcome == .redeemed, "fixture: redeeming a fresh code must succeed")
        return (family, first)
    }

    static func signingKey(kid: String, activatesAt: Date, retiresAt: Date? = nil, expiresAt: Date? = nil) -> SigningKeyRecord {
        SigningKeyRecord(kid: kid, algorithm: .es256, sealedPrivateKey: "plain:AAAA", publicJWK: #"{"kid":"\#(kid)"}"#,
                         createdAt: t0, activatesAt: activatesAt, retiresAt: retiresAt, expiresAt: expiresAt)
    }
}

struct RefusedByBody: Error, Equatable {}
