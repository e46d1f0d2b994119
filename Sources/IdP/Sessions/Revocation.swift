import Foundation

/// RFC 7009 token revocation and RFC 7662 token introspection.
///
/// Both authenticate the client exactly as the token endpoint does (and throttle wrong secrets the
/// same way). Neither tells a client anything about another client's tokens: revoking one is a
/// silent no-op, introspecting one says `{"active":false}` — unless the caller is a resource server
/// configured with `introspect_all_clients`.
extension Provider {
    /// A token this portal issued, found from its text: a refresh token (by hash) or an access token (`kpa_…`, by its MAC).
    /// An access token is recognised by its MAC alone: its family is read only once the caller has
    /// shown it may see it (no storage round trip tells a genuine foreign token from a forged one).
    enum FoundToken {
        case refresh(RefreshToken, RefreshFamily)
        case access(AccessTokenCodec.Claims)
    }

    func findToken(_ token: String) async throws -> FoundToken? {
        if token.hasPrefix(AccessTokenCodec.prefix) {
            // An expired access token is simply not active: `open` refuses it.
            return minter.accessTokens.open(token, now: now).map { .access($0) }
        }
        guard Self.looksLikeToken(token), let (record, family) = try await store.refreshToken(hash: Secrets.sha256Hex(token)) else { return nil }
        return .refresh(record, family)
    }

    /// RFC 7009 §2. Returns normally (200) for revoked, unknown and foreign tokens alike.
    public func revoke(_ p: FormParameters, authorizationHeader: String?, remoteAddress: String) async throws(OAuthError) {
        let credentials = try ClientCredentials(authorizationHeader: authorizationHeader, body: p)
        let client = try await authenticateClient(credentials, remoteAddress: remoteAddress)
        let token = try p.required("token")
        _ = try p.single("token_type_hint")
        try await answering("revocation", undone: "the token was not revoked") {
            let familyID: String?, owner: String?
            switch try await findToken(token) {
            case .refresh(let r, let f): (familyID, owner) = (f.id, r.clientID)
            case .access(let c): (familyID, owner) = (c.sessionID, c.clientID)
            case nil: (familyID, owner) = (nil, nil)
            }
            // §2.1: the client may revoke only its own tokens; anything else is answered the same as unknown.
            guard let familyID, owner == client.id, let family = try await store.family(id: familyID), family.grant.clientID == client.id else {
                return
            }
            if try await store.revokeFamily(id: familyID, now: now, reason: "revoked by \(client.name.isEmpty ? client.id : client.name)") {
                await auditor.record("token.revoke", subject: family.grant.userID, clientID: client.id, remoteAddress: remoteAddress,
                                     details: ["family": familyID])
            }
        }
    }


    /// RFC 7662 §2. Confidential clients only. Returns the JSON document.
    public func introspect(_ p: FormParameters, authorizationHeader: String?, remoteAddress: String) async throws(OAuthError) -> String {
        let credentials = try ClientCredentials(authorizationHeader: authorizationHeader, body: p)
        let client = try await authenticateClient(credentials, remoteAddress: remoteAddress)
        guard !client.isPublic else { throw OAuthError.invalidClient("introspection is for confidential clients (resource servers)") }
        let token = try p.required("token")
        _ = try p.single("token_type_hint")
        let inactive = #"{"active":false}"#
        return try await answering("introspection", undone: "the token was not checked") {
            let t = now
            var w = JSONObjectWriter()
            w.add("active", true)
            let family: RefreshFamily
            switch try await findToken(token) {
            case nil:
                return inactive
            case .refresh(let r, let f):
                guard f.revokedAt == nil, f.expiresAt > t, r.idleExpiresAt > t,
                      r.usedAt == nil || t.timeIntervalSince(r.usedAt!) <= policy.refreshGraceWindow else { return inactive }
                family = f
                w.add("token_type", "refresh_token")
                w.add("exp", Int(r.idleExpiresAt.timeIntervalSince1970))
                w.add("iat", Int(r.createdAt.timeIntervalSince1970))
            case .access(let c):
                guard c.clientID == client.id || client.introspectAll, let f = try await store.family(id: c.sessionID), f.revokedAt == nil,
                      f.grant.userID == c.subject, f.grant.clientID == c.clientID else { return inactive }
                family = f
                w.add("token_type", "Bearer")
                w.add("exp", c.expiresAt)
                w.add("iat", c.issuedAt)
            }
            guard family.grant.clientID == client.id || client.introspectAll else { return inactive }
            guard let identity = try await currentIdentity(userID: family.grant.userID, method: family.grant.authMethod) else { return inactive }
            w.add("client_id", family.grant.clientID)
            w.add("sub", family.grant.userID)
            w.add("username", identity.username)
            w.add("scope", family.grant.scopes.joined(separator: " "))
            w.add("iss", issuer)
            w.add("aud", family.grant.clientID)
            w.add("sid", Signout.sid(of: family))
            return w.string
        }
    }
}
