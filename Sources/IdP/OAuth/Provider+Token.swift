import Foundation

extension Provider {
    /// The token endpoint (RFC 6749 §3.2). Client authentication happens first and a request
    /// refused for it consumes nothing, so kubectl's retry with body credentials still works.
    /// `userAgent` (the request's User-Agent header) is recorded on a family a code redemption starts.
    public func token(_ p: FormParameters, authorizationHeader: String?, remoteAddress: String,
                      userAgent: String = "") async throws(OAuthError) -> TokenResponse {
        let credentials = try ClientCredentials(authorizationHeader: authorizationHeader, body: p)
        let client = try await authenticateClient(credentials, remoteAddress: remoteAddress)
        guard let grantType = try p.single("grant_type") else { throw OAuthError.invalidRequest("missing parameter 'grant_type'") }
        // Nothing was consumed on a storage outage (a rotation commits whole or not at all): the client
        // retries the same token, and a rotation that did commit is found again in the grace window.
        return try await answering("token endpoint") {
            switch grantType {
            case "authorization_code", "refresh_token":
                guard client.allows(grantType) else { throw OAuthError.unauthorizedClient("client '\(client.id)' may not use the \(grantType) grant") }
                return grantType == "refresh_token" ? try await refresh(p, client: client, remoteAddress: remoteAddress)
                    : try await redeemCode(p, client: client, remoteAddress: remoteAddress, userAgent: userAgent)
            case Client.deviceCodeGrant:
                return try await deviceToken(p, client: client, remoteAddress: remoteAddress)
            default:
                throw OAuthError.unsupportedGrantType("grant_type '\(grantType)' is not supported")
            }
        }
    }

    /// Runs the work of a protocol endpoint: an `OAuthError` passes through, a storage outage is a 503
    /// and anything else a 500, each logged — never an answer as if `undone` had been done (RFC 7009 §2.2.1).
    func answering<T>(_ endpoint: String, undone: String? = nil, _ body: () async throws -> T) async throws(OAuthError) -> T {
        do { return try await body() } catch let e as OAuthError {
            throw e
        } catch let e as StorageError where e.isUnavailable {
            logger.error("\(endpoint): database unavailable", metadata: ["error": "\(e.message)"])
            throw OAuthError.temporarilyUnavailable("the database cannot be reached; " + (undone.map { $0 + "; " } ?? "") + "try again")
        } catch {
            logger.error("\(endpoint) failed", metadata: ["error": "\(error)"])
            throw OAuthError.serverError((undone ?? "the request could not be completed") + "; try again")
        }
    }

    /// client_secret_basic, client_secret_post or none (RFC 6749 §2.3.1; OIDC Core §9).
    /// Failed secrets are throttled like passwords (`LoginThrottle`, account `client:ID`): per
    /// client and address, and per client and per address for addresses it never authenticated
    /// from — so nobody elsewhere can lock a client out at its own address.
    func authenticateClient(_ c: ClientCredentials, remoteAddress: String) async throws(OAuthError) -> Client {
        if c.usedBasic && (c.bodySecret != nil) {
            throw OAuthError.invalidRequest("use one client authentication method, not several")
        }
        if c.usedBasic, let bodyID = c.bodyID, bodyID != c.basicID {
            throw OAuthError.invalidRequest("client_id in the body does not match the Authorization header")
        }
        guard let id = c.usedBasic ? c.basicID : c.bodyID, !id.isEmpty else {
            throw OAuthError.invalidClient("client authentication is required")
        }
        let client: Client?
        do { client = try await clients.client(id: id) } catch {
            throw OAuthError.temporarilyUnavailable("storage unavailable")
        }
        guard let client else { throw OAuthError.invalidClient("client authentication failed") }
        let secret = (c.usedBasic ? c.basicSecret : c.bodySecret) ?? ""
        if client.isPublic {
            // Stock kubectl sends Basic base64("kubernetes:"): an empty secret means none.
            guard secret.isEmpty else { throw OAuthError.invalidClient("client authentication failed") }
            return client
        }
        let throttle = LoginThrottle(store: store, policy: loginPolicy)
        let t = now
        let keys: LoginThrottle.Keys
        do {
            keys = try await throttle.keys(account: LoginThrottle.clientPrefix + client.id, remoteAddress: remoteAddress, now: t)
            if let wait = try await throttle.waiting(keys, now: t) {
                let seconds = max(1, Int(wait.until.timeIntervalSince(t).rounded(.up)))
                throw OAuthError("invalid_client", "too many failed client authentications; try again in \(seconds) s", status: 429)
            }
        } catch let e as OAuthError { throw e } catch { throw OAuthError.temporarilyUnavailable("storage unavailable") }
        guard let hash = client.secretHash, !secret.isEmpty, Secrets.verifyClientSecret(secret, hash: hash) else {
            _ = try? await throttle.failed(keys, now: t)
            await auditor.record("client.auth_failure", clientID: client.id, remoteAddress: remoteAddress, success: false,
                                 details: ["reason": "wrong secret"])
            throw OAuthError.invalidClient("client authentication failed")
        }
        if !keys.familiar { try? await throttle.succeeded(keys, account: LoginThrottle.clientPrefix + client.id, now: t) }
        return client
    }

    // MARK: authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6)

    func redeemCode(_ p: FormParameters, client: Client, remoteAddress: String, userAgent: String) async throws -> TokenResponse {
        let code = try p.required("code")
        let redirectURI = try p.single("redirect_uri")
        let verifier = try p.single("code_verifier")
        guard Self.looksLikeToken(code) else { throw OAuthError.invalidGrant("the code is invalid or expired") }
        let hash = Secrets.sha256Hex(code)
        let t = now
        guard let record = try await store.code(hash: hash) else { throw OAuthError.invalidGrant("the code is invalid or expired") }
        guard record.grant.clientID == client.id else { throw OAuthError.invalidGrant("the code is invalid or expired") }
        if record.usedAt != nil {
            try await codeReplayed(record, remoteAddress: remoteAddress)
        }
        guard record.expiresAt > t else { throw OAuthError.invalidGrant("the code is invalid or expired") }
        guard redirectURI == record.redirectURI else { throw OAuthError.invalidGrant("redirect_uri does not match the authorization request") }
        if let challenge = record.codeChallenge {
            guard let verifier else { throw OAuthError.invalidGrant("code_verifier is required") }
            guard PKCE.isValidVerifier(verifier) else { throw OAuthError.invalidGrant("code_verifier is malformed") }
            guard Secrets.constantTimeEqual(PKCE.s256(verifier), challenge) else { throw OAuthError.invalidGrant("code_verifier does not match the challenge") }
        } else if verifier != nil {
            throw OAuthError.invalidGrant("code_verifier sent, but the authorization request had no code_challenge")
        }
        // Signed out (or signed out everywhere) since the code was issued: nothing may start from it now.
        if !record.grant.sessionID.isEmpty, try await store.session(sid: record.grant.sessionID) == nil {
            throw OAuthError.invalidGrant("the sign-in behind this code has ended; sign in again")
        }
        guard let current = try await currentIdentity(userID: record.grant.userID, method: record.grant.authMethod) else {
            throw OAuthError.invalidGrant("the account is disabled or no longer exists")
        }
        let identity = try await releasable(current, clientID: client.id, remoteAddress: remoteAddress)

        let refresh = newToken()
        let family = RefreshFamily(id: random.identifier(), grant: record.grant, createdAt: t,
                                   expiresAt: t + policy.refreshAbsoluteLifetime,
                                   address: Identifiers.printable(remoteAddress), userAgent: Identifiers.printable(userAgent), purpose: "signin")
        let first = RefreshToken(hash: Secrets.sha256Hex(refresh), familyID: family.id, clientID: client.id, createdAt: t,
                                 idleExpiresAt: min(t + policy.refreshIdleTimeout, family.expiresAt))
        switch try await store.redeemCode(hash: hash, now: t, family: family, firstToken: first) {
        case .redeemed:
            break
        case .alreadyUsed:
            try await codeReplayed(try await store.code(hash: hash) ?? record, remoteAddress: remoteAddress)
        case .notFound:
            throw OAuthError.invalidGrant("the code is invalid or expired")
        }
        let minted = try await minter.mint(identity: identity, grant: record.grant, familyID: family.id, nonce: record.nonce,
                                           now: t, jti: random.token(byteCount: 12))
        await auditor.record("token.issue", actor: identity.username, subject: identity.subject, clientID: client.id,
                             remoteAddress: remoteAddress, details: ["grant": "authorization_code", "family": family.id])
        return TokenResponse(accessToken: minted.accessToken, idToken: minted.idToken, refreshToken: refresh,
                             expiresIn: Int(policy.accessTokenTTL), scopes: record.grant.scopes, familyID: family.id,
                                 refreshExpiresIn: refreshLife(family, at: t))
    }

    /// RFC 6749 §4.1.2: a code used twice revokes what the first use minted.
    private func codeReplayed(_ record: AuthorizationCode, remoteAddress: String) async throws -> Never {
        if let fid = record.familyID, let family = try await store.family(id: fid) {
            _ = try await Signout(provider: self).endFamily(family, reason: "authorization code replayed")
        }
        await auditor.record("code.replay", subject: record.grant.userID, clientID: record.grant.clientID,
                             remoteAddress: remoteAddress, success: false, details: ["family": record.familyID ?? ""])
        throw OAuthError.invalidGrant("the code has already been used")
    }

    // MARK: refresh_token (RFC 6749 §6, RFC 9700 §4.14.2)

    func refresh(_ p: FormParameters, client: Client, remoteAddress: String) async throws -> TokenResponse {
        let token = try p.required("refresh_token")
        let requestedScope = try p.single("scope")
        guard Self.looksLikeToken(token) else { throw OAuthError.invalidGrant("the refresh token is invalid or expired") }
        let hash = Secrets.sha256Hex(token)
        let t = now
        let remembered = issuedRefreshTokens.take(hash)
        let found: (RefreshToken, RefreshFamily)?
        if let remembered { found = remembered } else { found = try await store.refreshToken(hash: hash) }
        guard let (record, family) = found else {
            throw OAuthError.invalidGrant("the refresh token is invalid or expired")
        }
        // Another client's token answers exactly as an unknown one: nobody learns whether it is live.
        guard record.clientID == client.id else { throw OAuthError.invalidGrant("the refresh token is invalid or expired") }
        guard family.revokedAt == nil else { throw OAuthError.invalidGrant(revokedMessage(family)) }
        guard family.expiresAt > t else { throw OAuthError.invalidGrant("the session has reached its maximum lifetime; log in again") }

        var scopes = family.grant.scopes
        if let requestedScope {
            let asked = requestedScope.split(separator: " ").map(String.init)
            guard Set(asked).isSubset(of: Set(family.grant.scopes)) else {
                throw OAuthError.invalidScope("a refresh cannot widen the scope of the original grant")
            }
            scopes = asked
        }

        let successor = successor(of: token)
        if let usedAt = record.usedAt {
            return try await replayed(token: token, successor: successor, usedAt: usedAt, family: family, scopes: scopes,
                                      client: client, remoteAddress: remoteAddress)
        }
        guard record.idleExpiresAt > t else { throw OAuthError.invalidGrant("the refresh token expired after inactivity; log in again") }

        guard let current = try await currentIdentity(userID: family.grant.userID, method: family.grant.authMethod) else {
            _ = try await Signout(provider: self).endFamily(family, reason: "account disabled or deleted")
            await auditor.record("token.refresh", subject: family.grant.userID, clientID: client.id, remoteAddress: remoteAddress,
                                 success: false, details: ["family": family.id, "reason": "account disabled or deleted"])
            throw OAuthError.invalidGrant("the account is disabled or no longer exists")
        }
        let identity = try await releasable(current, clientID: client.id, remoteAddress: remoteAddress)
        // A session begun without a second factor ends its refreshes once the policy requires one (after any grace).
        let isAdmin = current.isAdmin || current.groups.contains { adminGroups.contains($0) }
        if try await mfa.verdict(current, isAdmin: isAdmin, amr: family.grant.amr, store: store, now: t) == .blocked {
            await auditor.record("token.refresh", actor: current.username, subject: current.subject, clientID: client.id, remoteAddress: remoteAddress,
                                 success: false, details: ["family": family.id, "reason": "second factor required"])
            throw OAuthError.invalidGrant("a second factor is required for this account: sign in again at \(issuer) with a passkey or an authenticator code")
        }

        let next = RefreshToken(hash: Secrets.sha256Hex(successor), familyID: family.id, clientID: client.id, createdAt: t,
                                idleExpiresAt: min(t + policy.refreshIdleTimeout, family.expiresAt))
        // The audit event commits with the rotation: one transaction, no separate write.
        let event = AuditEvent(time: t, type: "token.refresh", actor: identity.username, subject: identity.subject, clientID: client.id,
                               remoteAddress: remoteAddress, details: ["family": family.id])
        // The successor's tokens are signed while the rotation is written (on PostgreSQL a commit
        // waits for the WAL flush): they leave the process only if the rotation succeeded.
        let pending = store.beginRefreshRotation(hash: hash, now: t, successor: next, audit: event)
        var grant = family.grant
        grant.scopes = scopes
        let minted: (accessToken: String, idToken: String)
        do {
            minted = try await minter.mint(identity: identity, grant: grant, familyID: family.id, nonce: nil, now: t,
                                           jti: random.token(byteCount: 12))
        } catch {
            _ = try? await pending.outcome()  // answered only once the rotation is settled
            throw error
        }
        switch try await pending.outcome() {
        case .rotated:
            PortalMetrics.count(event.type, success: true, details: event.details)
            var live = family
            live.lastUsedAt = t
            issuedRefreshTokens.remember(next, family: live)
            return TokenResponse(accessToken: minted.accessToken, idToken: minted.idToken, refreshToken: successor,
                                 expiresIn: Int(policy.accessTokenTTL), scopes: scopes, familyID: family.id,
                                 refreshExpiresIn: refreshLife(family, at: t))
        case .alreadyUsed(let usedAt):
            return try await replayed(token: token, successor: successor, usedAt: usedAt, family: family, scopes: scopes,
                                      client: client, remoteAddress: remoteAddress)
        case .notFound:
            // From memory, the family may have been ended since: the database says how.
            if remembered != nil, let (_, current) = try await store.refreshToken(hash: hash), current.revokedAt != nil {
                throw OAuthError.invalidGrant(revokedMessage(current))
            }
            throw OAuthError.invalidGrant("the refresh token is invalid or expired")
        }
    }

    /// A consumed token presented again. Inside the grace window, and while its successor is
    /// still unused, the same successor is handed out again (parallel kubectl processes);
    /// otherwise it is a replay: the whole family dies.
    private func replayed(token: String, successor: String, usedAt: Date, family: RefreshFamily, scopes: [String],
                          client: Client, remoteAddress: String) async throws -> TokenResponse {
        let t = now
        if t.timeIntervalSince(usedAt) <= policy.refreshGraceWindow + policy.refreshGraceSlack,
           try await store.refreshTokenIsUnused(hash: Secrets.sha256Hex(successor)),
           let current = try await currentIdentity(userID: family.grant.userID, method: family.grant.authMethod) {
            let identity = try await releasable(current, clientID: client.id, remoteAddress: remoteAddress)
            var grant = family.grant
            grant.scopes = scopes
            let minted = try await minter.mint(identity: identity, grant: grant, familyID: family.id, nonce: nil, now: t,
                                               jti: random.token(byteCount: 12))
            await auditor.record("token.refresh", actor: identity.username, subject: identity.subject, clientID: client.id,
                                 remoteAddress: remoteAddress, details: ["family": family.id, "grace": "true"])
            return TokenResponse(accessToken: minted.accessToken, idToken: minted.idToken, refreshToken: successor,
                                 expiresIn: Int(policy.accessTokenTTL), scopes: scopes, familyID: family.id,
                                 refreshExpiresIn: refreshLife(family, at: t))
        }
        _ = try await Signout(provider: self).endFamily(family, reason: "refresh token replayed")
        await auditor.record("token.replay", subject: family.grant.userID, clientID: client.id, remoteAddress: remoteAddress,
                             success: false, details: ["family": family.id])
        logger.warning("refresh token replayed; family revoked", metadata: ["family": "\(family.id)", "client": "\(client.id)"])
        throw OAuthError.invalidGrant("the refresh token has already been used; this session has been revoked")
    }

    /// Seconds a refresh token issued now lives unused.
    func refreshLife(_ family: RefreshFamily, at t: Date) -> Int {
        Int(min(t + policy.refreshIdleTimeout, family.expiresAt).timeIntervalSince(t))
    }

    /// What kubectl (or any client) prints when its family was ended: why, and where to sign in again.
    func revokedMessage(_ family: RefreshFamily) -> String {
        let why = family.revokeReason.map { " (\($0))" } ?? ""
        let again = kubernetesClients.contains(family.grant.clientID) ? "sign in again at \(issuer)/kubernetes" : "sign in again"
        return "this session has been ended\(why); \(again)"
    }

    // MARK: userinfo (OIDC Core §5.3)

    public func userinfo(accessToken: String) async throws(OAuthError) -> String {
        guard let claims = minter.accessTokens.open(accessToken, now: now) else {
            throw OAuthError.invalidToken("the access token is invalid or expired")
        }
        let sub = claims.subject, sid = claims.sessionID, scopes = claims.scopes
        do {
            guard let family = try await store.family(id: sid), family.revokedAt == nil, family.grant.userID == sub,
                  let identity = try await currentIdentity(userID: sub, method: family.grant.authMethod)
            else { throw OAuthError.invalidToken("the access token has been revoked") }
            return TokenMinter.userinfoJSON(kubernetes.safe(identity).identity, scopes: scopes)
        } catch let e as OAuthError {
            throw e
        } catch {
            throw OAuthError.temporarilyUnavailable("storage unavailable")
        }
    }
}

extension Provider {
    /// Tokens minted for a signed-in person's device without a redirect (the Kubernetes page
    /// and the kubeconfig download): a fresh refresh family for `clientID`, exactly as if the
    /// code flow had run. Audited as `token.issue` with grant "portal". The family records
    /// `remoteAddress` and `userAgent` (the signed-in browser's User-Agent header).
    public func issueForDevice(identity: Identity, clientID: String, session: LoginSession,
                               remoteAddress: String, purpose: String, userAgent: String = "") async throws -> TokenResponse {
        guard try await clients.client(id: clientID) != nil else { throw OAuthError.invalidRequest("unknown client '\(clientID)'") }
        let identity = try await releasable(identity, clientID: clientID, remoteAddress: remoteAddress)
        let t = now
        let grant = Grant(userID: identity.subject, clientID: clientID, scopes: ["openid", "profile", "email", "groups", "offline_access"],
                          authTime: session.authTime, authMethod: session.authMethod, sessionID: session.sid, amr: session.amr)
        let refresh = newToken()
        let family = RefreshFamily(id: random.identifier(), grant: grant, createdAt: t, expiresAt: t + policy.refreshAbsoluteLifetime,
                                   address: Identifiers.printable(remoteAddress), userAgent: Identifiers.printable(userAgent), purpose: purpose)
        let first = RefreshToken(hash: Secrets.sha256Hex(refresh), familyID: family.id, clientID: clientID, createdAt: t,
                                 idleExpiresAt: min(t + policy.refreshIdleTimeout, family.expiresAt))
        try await store.startFamily(family, firstToken: first)
        let minted = try await minter.mint(identity: identity, grant: grant, familyID: family.id, nonce: nil, now: t, jti: random.token(byteCount: 12))
        await auditor.record("token.issue", actor: identity.username, subject: identity.subject, clientID: clientID,
                             remoteAddress: remoteAddress, details: ["grant": "portal", "purpose": purpose, "family": family.id])
        return TokenResponse(accessToken: minted.accessToken, idToken: minted.idToken, refreshToken: refresh,
                             expiresIn: Int(policy.accessTokenTTL), scopes: grant.scopes, familyID: family.id,
                                 refreshExpiresIn: refreshLife(family, at: t))
    }
}
