import Foundation

extension CredentialService {
    public static let exchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
    public static let credentialTokenType = "urn:portal:params:oauth:token-type:application-credential"
    public static let idTokenType = "urn:ietf:params:oauth:token-type:id_token"

    /// RFC 8693 token exchange: an application credential in, a short-lived id_token out
    /// (for clusters that trust the portal through OIDC only). The client authenticates as
    /// at the token endpoint; the id_token's audience is that client.
    public func exchange(_ p: FormParameters, authorizationHeader: String?, remoteAddress: String) async throws(OAuthError) -> String {
        let credentials = try ClientCredentials(authorizationHeader: authorizationHeader, body: p)
        let client = try await provider.authenticateClient(credentials, remoteAddress: remoteAddress)
        guard let subject = try p.single("subject_token") else { throw OAuthError.invalidRequest("missing parameter 'subject_token'") }
        guard let type = try p.single("subject_token_type") else { throw OAuthError.invalidRequest("missing parameter 'subject_token_type'") }
        guard type == Self.credentialTokenType else {
            throw OAuthError.invalidRequest("subject_token_type must be \(Self.credentialTokenType)")
        }
        if let requested = try p.single("requested_token_type"), requested != Self.idTokenType {
            throw OAuthError.invalidRequest("only requested_token_type=\(Self.idTokenType) is supported")
        }
        if let audience = try p.single("audience"), audience != client.id {
            throw OAuthError("invalid_target", "the audience must be the authenticated client (\(client.id))")
        }
        switch await validate(subject) {
        case .invalid(let why):
            await auditor.record("token.exchange", clientID: client.id, remoteAddress: remoteAddress, success: false, details: ["reason": why])
            throw OAuthError.invalidGrant("the application credential is not valid: \(why)")
        case .valid(let principal):
            if case .failure(let why) = provider.kubernetes.username(principal.identity, robot: principal.isRobot) {
                await auditor.record("token.exchange", actor: principal.identity.username, subject: principal.credentialID, clientID: client.id,
                                     remoteAddress: remoteAddress, success: false, details: ["reason": why.reason])
                throw OAuthError.invalidGrant(why.description)
            }
            let now = clock.now()
            let idToken: String
            do { idToken = try await provider.minter.idToken(identity: principal.identity, clientID: client.id, authTime: now, now: now) } catch {
                throw OAuthError.serverError("cannot sign the token")
            }
            await auditor.record("token.exchange", actor: principal.identity.username, subject: principal.credentialID, clientID: client.id,
                                 remoteAddress: remoteAddress, details: ["grant": "token-exchange"])
            var w = JSONObjectWriter()
            w.add("access_token", idToken)
            w.add("issued_token_type", Self.idTokenType)
            w.add("token_type", "N_A")
            w.add("expires_in", Int(provider.policy.idTokenTTL))
            w.add("id_token", idToken)
            return w.string
        }
    }
}
