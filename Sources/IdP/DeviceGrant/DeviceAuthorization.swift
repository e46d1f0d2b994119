import Foundation

/// The short code a person types on the portal's /device page (RFC 8628 §6.1): eight letters from
/// twenty consonants (no vowels, so no words; no lookalikes), 20^8 ≈ 2^34.6, shown as XXXX-XXXX.
public enum UserCode {
    static let alphabet = Array("BCDFGHJKLMNPQRSTVWXZ")
    public static let length = 8

    public static func make(_ random: any RandomSource) -> String {
        // Rejection sampling: 256 is not a multiple of 20, so bytes ≥ 240 are drawn again.
        var out = ""
        while out.count < length {
            for b in random.bytes(16) where b < 240 && out.count < length { out.append(alphabet[Int(b) % alphabet.count]) }
        }
        return out
    }

    /// What a person typed, as stored: upper case, separators and spaces dropped; nil when it cannot be a code.
    public static func normalize(_ typed: String) -> String? {
        let letters = typed.uppercased().filter { !($0 == "-" || $0 == " " || $0 == "\t") }
        guard letters.count == length, letters.allSatisfy({ alphabet.contains($0) }) else { return nil }
        return letters
    }

    public static func display(_ code: String) -> String {
        code.count == length ? String(code.prefix(4)) + "-" + String(code.suffix(4)) : code
    }
}

extension Provider {
    public static let deviceGrantInterval = 5
    static let deviceScopes: Set<String> = ["openid", "profile", "email", "groups", "offline_access"]

    /// RFC 8628 §3.1–3.2: a device asks; the answer is JSON (device_code, user_code, where to go, for how long, how often to poll).
    public func deviceAuthorization(_ p: FormParameters, authorizationHeader: String?, remoteAddress: String,
                                    userAgent: String) async throws(OAuthError) -> String {
        let credentials = try ClientCredentials(authorizationHeader: authorizationHeader, body: p)
        let client = try await authenticateClient(credentials, remoteAddress: remoteAddress)
        guard client.allows(Client.deviceCodeGrant) else {
            throw OAuthError.unauthorizedClient("client '\(client.id)' may not use the device authorization grant")
        }
        let scopes = (try p.single("scope") ?? "openid profile email groups offline_access").split(separator: " ").map(String.init)
        guard !scopes.isEmpty, Set(scopes).isSubset(of: Self.deviceScopes), scopes.contains("openid") else {
            throw OAuthError.invalidScope("scope must include openid and be among: \(Self.deviceScopes.sorted().joined(separator: " "))")
        }
        let t = now
        let deviceCode = newToken()
        var grant = DeviceGrant(deviceHash: Secrets.sha256Hex(deviceCode), userCode: "", clientID: client.id, scopes: scopes, createdAt: t,
                                expiresAt: t + policy.deviceCodeTTL, interval: Self.deviceGrantInterval,
                                address: Identifiers.printable(remoteAddress), userAgent: Identifiers.printable(String(userAgent.prefix(512))))
        try await answering("device authorization") {
            var attempt = 0
            while true {
                grant.userCode = UserCode.make(random)
                do { try await store.createDeviceGrant(grant); break } catch let e as StorageError where e.isConflict && attempt < 5 { attempt += 1 }
            }
        }
        await auditor.record("device.request", clientID: client.id, remoteAddress: remoteAddress,
                             details: ["user_code": grant.userCode, "scope": scopes.joined(separator: " ")])
        var w = JSONObjectWriter()
        w.add("device_code", deviceCode)
        w.add("user_code", UserCode.display(grant.userCode))
        w.add("verification_uri", issuer + "/device")
        w.add("verification_uri_complete", issuer + "/device?user_code=" + UserCode.display(grant.userCode))
        w.add("expires_in", Int(policy.deviceCodeTTL))
        w.add("interval", Self.deviceGrantInterval)
        return w.string
    }

    /// RFC 8628 §3.4–3.5 at the token endpoint.
    func deviceToken(_ p: FormParameters, client: Client, remoteAddress: String) async throws -> TokenResponse {
        guard client.allows(Client.deviceCodeGrant) else {
            throw OAuthError.unauthorizedClient("client '\(client.id)' may not use the device authorization grant")
        }
        let code = try p.required("device_code")
        guard Self.looksLikeToken(code) else { throw OAuthError.invalidGrant("the device code is invalid") }
        let hash = Secrets.sha256Hex(code)
        let t = now
        switch try await store.pollDeviceGrant(deviceHash: hash, clientID: client.id, now: t) {
        case .notFound: throw OAuthError.invalidGrant("the device code is invalid")
        case .expired: throw OAuthError("expired_token", "the device code has expired; start the sign-in again")
        case .slowDown(let interval): throw OAuthError("slow_down", "polling too fast: wait \(interval) seconds between requests")
        case .pending: throw OAuthError("authorization_pending", "waiting for the person to approve the sign-in")
        case .denied: throw OAuthError("access_denied", "the sign-in was denied")
        case .redeemed: throw OAuthError.invalidGrant("the device code has already been used")
        case .approved(let g):
            guard let current = try await currentIdentity(userID: g.userID, method: g.authMethod) else {
                throw OAuthError.invalidGrant("the account is disabled or no longer exists")
            }
            let identity = try await releasable(current, clientID: client.id, remoteAddress: remoteAddress)
            let grant = Grant(userID: g.userID, clientID: client.id, scopes: g.scopes, authTime: g.authTime ?? t, authMethod: g.authMethod,
                              sessionID: g.sessionID, amr: g.amr)
            let refresh = newToken()
            let family = RefreshFamily(id: random.identifier(), grant: grant, createdAt: t, expiresAt: t + policy.refreshAbsoluteLifetime,
                                       address: g.address, userAgent: g.userAgent, purpose: "device")
            let first = RefreshToken(hash: Secrets.sha256Hex(refresh), familyID: family.id, clientID: client.id, createdAt: t,
                                     idleExpiresAt: min(t + policy.refreshIdleTimeout, family.expiresAt))
            guard try await store.redeemDeviceGrant(deviceHash: hash, family: family, firstToken: first) else {
                throw OAuthError.invalidGrant("the device code has already been used")
            }
            let minted = try await minter.mint(identity: identity, grant: grant, familyID: family.id, nonce: nil, now: t,
                                               jti: random.token(byteCount: 12))
            await auditor.record("token.issue", actor: identity.username, subject: identity.subject, clientID: client.id,
                                 remoteAddress: remoteAddress, details: ["grant": "device_code", "family": family.id, "user_code": g.userCode])
            return TokenResponse(accessToken: minted.accessToken, idToken: minted.idToken, refreshToken: refresh,
                                 expiresIn: Int(policy.accessTokenTTL), scopes: grant.scopes, familyID: family.id,
                                 refreshExpiresIn: refreshLife(family, at: t))
        }
    }

    /// A person's answer on the /device page (audited: `device.approve` / `device.deny`). False when the
    /// code was no longer waiting (decided already, or expired).
    public func decideDevice(userCode: String, approve: Bool, session: LoginSession, identity: Identity,
                             remoteAddress: String) async throws -> Bool {
        let done = try await store.decideDeviceGrant(userCode: userCode, now: now, approve: approve, userID: identity.subject,
                                                     authTime: session.authTime, authMethod: session.authMethod, sessionID: session.sid,
                                                     amr: session.amr)
        if done {
            await auditor.record(approve ? "device.approve" : "device.deny", actor: identity.username, subject: identity.subject,
                                 remoteAddress: remoteAddress, details: ["user_code": userCode])
        }
        return done
    }
}
