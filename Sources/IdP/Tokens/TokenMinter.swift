import Crypto
import Foundation

public struct TokenResponse: Sendable, Equatable {
    public var accessToken: String
    public var idToken: String
    public var refreshToken: String
    public var expiresIn: Int
    public var scopes: [String]
    public var familyID: String
    /// Seconds until the refresh token dies unused (its idle timeout, capped by the family's end):
    /// `refresh_expires_in`, as Keycloak sends it, so a client can say when a new sign-in is due.
    public var refreshExpiresIn: Int?

    public init(accessToken: String, idToken: String, refreshToken: String, expiresIn: Int, scopes: [String], familyID: String,
                refreshExpiresIn: Int? = nil) {
        self.accessToken = accessToken; self.idToken = idToken; self.refreshToken = refreshToken; self.expiresIn = expiresIn
        self.scopes = scopes; self.familyID = familyID; self.refreshExpiresIn = refreshExpiresIn
    }

    public var json: String {
        var w = JSONObjectWriter(reserving: accessToken.utf8.count + idToken.utf8.count + refreshToken.utf8.count + 192)
        w.add("access_token", accessToken)
        w.add("token_type", "Bearer")
        w.add("expires_in", expiresIn)
        w.add("refresh_token", refreshToken)
        if let r = refreshExpiresIn { w.add("refresh_expires_in", r) }
        w.add("id_token", idToken)
        w.add("scope", scopes.joined(separator: " "))
        return w.string
    }
}

/// Signs id_tokens (OIDC Core §2) and seals access tokens (see `AccessTokenCodec`).
public struct TokenMinter: Sendable {
    let issuer: String
    let keys: KeyManager
    let policy: TokenPolicy
    public let accessTokens: AccessTokenCodec

    public init(issuer: String, keys: KeyManager, policy: TokenPolicy, accessTokens: AccessTokenCodec) {
        self.issuer = issuer; self.keys = keys; self.policy = policy; self.accessTokens = accessTokens
    }

    public func mint(identity: Identity, grant: Grant, familyID: String, nonce: String?, now: Date, jti: String) async throws -> (accessToken: String, idToken: String) {
        let key = try keys.signingKey()
        let iat = Int(now.timeIntervalSince1970)
        let scopes = Set(grant.scopes)

        let accessToken = accessTokens.seal(.init(subject: identity.subject, sessionID: familyID, clientID: grant.clientID,
                                                  scopes: grant.scopes, issuedAt: iat, expiresAt: iat + Int(policy.accessTokenTTL), jti: jti))

        var id = JSONObjectWriter(reserving: 512 + 32 * identity.groups.count)
        id.add("iss", issuer)
        id.add("sub", identity.subject)
        id.add("aud", grant.clientID)
        id.add("exp", iat + Int(policy.idTokenTTL))
        id.add("iat", iat)
        id.add("auth_time", Int(grant.authTime.timeIntervalSince1970))
        // OIDC Back-Channel Logout §2.1: the portal session the RP's session belongs to.
        id.add("sid", grant.sessionID.isEmpty ? familyID : grant.sessionID)
        id.addIfPresent("nonce", nonce)
        id.add("at_hash", Self.atHash(accessToken))
        // RFC 8176 methods of the login the grant came from (kept through refreshes), and `acr` when configured.
        if !grant.amr.isEmpty { id.add("amr", grant.amr) }
        let acr = AMR.isMultiFactor(grant.amr) ? policy.acrMultiFactor : policy.acrSingleFactor
        if !acr.isEmpty { id.add("acr", acr) }
        Self.addIdentityClaims(identity, scopes: scopes, to: &id)
        let idToken = try JWS.sign(payload: id.data, key: key, type: "JWT")
        return (accessToken, idToken)
    }

    /// Only an id_token (token exchange for application credentials): no access token, no refresh.
    public func idToken(identity: Identity, clientID: String, authTime: Date, now: Date) async throws -> String {
        let key = try keys.signingKey()
        let iat = Int(now.timeIntervalSince1970)
        var id = JSONObjectWriter()
        id.add("iss", issuer)
        id.add("sub", identity.subject)
        id.add("aud", clientID)
        id.add("exp", iat + Int(policy.idTokenTTL))
        id.add("iat", iat)
        id.add("auth_time", Int(authTime.timeIntervalSince1970))
        Self.addIdentityClaims(identity, scopes: ["profile", "email", "groups"], to: &id)
        return try JWS.sign(payload: id.data, key: key, type: "JWT")
    }

    /// Claims released by scope (OIDC Core §5.4), plus `groups` for the `groups` scope.
    static func addIdentityClaims(_ identity: Identity, scopes: Set<String>, to w: inout JSONObjectWriter) {
        if scopes.contains("profile") {
            w.add("preferred_username", identity.username)
            w.add("name", identity.displayName.isEmpty ? identity.username : identity.displayName)
        }
        if scopes.contains("email"), !identity.email.isEmpty {
            w.add("email", identity.email)
            w.add("email_verified", identity.emailVerified)
        }
        if scopes.contains("groups") { w.add("groups", identity.groups) }
    }

    /// OIDC Core §3.1.3.6: left half of SHA-256 of the access token, base64url.
    public static func atHash(_ accessToken: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Data(accessToken.utf8))).prefix(16))
    }

    public static func userinfoJSON(_ identity: Identity, scopes: [String]) -> String {
        var w = JSONObjectWriter()
        w.add("sub", identity.subject)
        addIdentityClaims(identity, scopes: Set(scopes), to: &w)
        return w.string
    }
}
