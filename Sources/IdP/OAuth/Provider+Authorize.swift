import Foundation

extension Provider {
    /// Validates an authorization request (RFC 6749 §4.1.1, §3.1.2.4; OIDC Core §3.1.2.2; RFC 7636 §4.4).
    /// Errors about the client or the redirect URI are never redirected (RFC 6749 §4.1.2.1).
    public func checkAuthorization(_ p: FormParameters) async throws -> AuthorizationCheck {
        let clientID: String
        let redirectURI: String
        let client: Client
        do {
            clientID = try p.required("client_id")
            redirectURI = try p.required("redirect_uri")
        } catch {
            return .showError(error)
        }
        guard let c = try await clients.client(id: clientID) else {
            return .showError(.invalidRequest("Unknown client '\(clientID)'."))
        }
        client = c
        // Exact string match (OAuth 2.1 §4.1.1, RFC 9700 §4.1.3): no normalisation, no prefix match.
        guard client.redirectURIs.contains(redirectURI) else {
            return .showError(.invalidRequest("The redirect URI is not registered for client '\(clientID)'."))
        }
        let stateValue: String?
        do { stateValue = try p.single("state") } catch { return .redirectError(error, redirectURI: redirectURI, state: nil) }
        if let s = stateValue, s.utf8.count > 2048 {
            return .redirectError(.invalidRequest("state is too long"), redirectURI: redirectURI, state: nil)
        }

        do {
            if try p.single("request") != nil || p.single("request_uri") != nil {
                throw OAuthError("request_not_supported", "request objects are not supported")
            }
            guard let responseType = try p.single("response_type") else { throw OAuthError.invalidRequest("missing parameter 'response_type'") }
            guard responseType == "code" else { throw OAuthError.unsupportedResponseType("only response_type=code is supported") }
            if let mode = try p.single("response_mode"), mode != "query" { throw OAuthError.invalidRequest("only response_mode=query is supported") }

            let scopes = (try p.single("scope") ?? "").split(separator: " ").map(String.init)
            guard scopes.contains("openid") else { throw OAuthError.invalidScope("the 'openid' scope is required") }
            for s in scopes where !AuthorizationRequest.supportedScopes.contains(s) {
                throw OAuthError.invalidScope("unsupported scope '\(s)'")
            }

            let challenge = try p.single("code_challenge")
            let method = try p.single("code_challenge_method")
            if let method, method != "S256" {
                throw OAuthError.invalidRequest("code_challenge_method '\(method)' is not supported; use S256")
            }
            if let challenge {
                // RFC 7636 §4.3: a missing method means "plain", which is refused.
                guard method == "S256" else { throw OAuthError.invalidRequest("code_challenge_method=S256 is required (plain is refused)") }
                guard PKCE.isValidChallenge(challenge) else { throw OAuthError.invalidRequest("code_challenge is not a valid S256 challenge") }
            } else {
                if method != nil { throw OAuthError.invalidRequest("code_challenge_method without code_challenge") }
                if client.isPublic { throw OAuthError.invalidRequest("PKCE (code_challenge with S256) is required for public clients") }
            }

            let nonce = try p.single("nonce")
            if let n = nonce, n.utf8.count > 512 { throw OAuthError.invalidRequest("nonce is too long") }

            var prompt = Set((try p.single("prompt") ?? "").split(separator: " ").map(String.init))
            for v in prompt where !["none", "login", "consent", "select_account"].contains(v) {
                throw OAuthError.invalidRequest("unsupported prompt value '\(v)'")
            }
            if prompt.contains("none") && prompt.count > 1 { throw OAuthError.invalidRequest("prompt=none cannot be combined") }
            prompt.remove("consent")
            prompt.remove("select_account")

            var maxAge: Int?
            if let m = try p.single("max_age") {
                guard let v = Int(m), v >= 0 else { throw OAuthError.invalidRequest("max_age must be a non-negative integer") }
                maxAge = v
            }
            return .valid(AuthorizationRequest(clientID: clientID, redirectURI: redirectURI, scopes: scopes, state: stateValue,
                                               nonce: nonce, codeChallenge: challenge, prompt: prompt, maxAge: maxAge))
        } catch let e as OAuthError {
            return .redirectError(e, redirectURI: redirectURI, state: stateValue)
        }
    }

    /// Whether an existing browser session satisfies the request's prompt and max_age.
    public func sessionSatisfies(_ request: AuthorizationRequest, session: LoginSession?) -> Bool {
        guard let session else { return false }
        if request.prompt.contains("login") { return false }
        if let maxAge = request.maxAge, now.timeIntervalSince(session.authTime) > TimeInterval(maxAge) { return false }
        return true
    }

    /// Issues a code for a logged-in user and returns the redirect to send the browser to
    /// (RFC 6749 §4.1.2, with `iss` per RFC 9207).
    /// The grant remembers the browser session (`sid`), so signing out can end what it started.
    public func issueCode(for request: AuthorizationRequest, session: LoginSession, remoteAddress: String) async throws -> String {
        let code = newToken()
        let t = now
        let userID = session.userID
        let grant = Grant(userID: userID, clientID: request.clientID, scopes: request.scopes, authTime: session.authTime,
                          authMethod: session.authMethod, sessionID: session.sid, amr: session.amr)
        try await store.createCode(AuthorizationCode(hash: Secrets.sha256Hex(code), grant: grant, redirectURI: request.redirectURI,
                                                     nonce: request.nonce, codeChallenge: request.codeChallenge,
                                                     createdAt: t, expiresAt: t + policy.codeTTL))
        await auditor.record("code.issue", actor: userID, subject: userID, clientID: request.clientID, remoteAddress: remoteAddress)
        var params = [("code", code)]
        if let s = request.state { params.append(("state", s)) }
        params.append(("iss", issuer))
        return Self.appendQuery(request.redirectURI, params)
    }

    /// The redirect carrying an error to the client (RFC 6749 §4.1.2.1).
    public func errorRedirect(_ error: OAuthError, redirectURI: String, state: String?) -> String {
        var params = [("error", error.code), ("error_description", error.errorDescription)]
        if let state { params.append(("state", state)) }
        params.append(("iss", issuer))
        return Self.appendQuery(redirectURI, params)
    }

    static func appendQuery(_ uri: String, _ params: [(String, String)]) -> String {
        params.isEmpty ? uri : uri + (uri.contains("?") ? "&" : "?") + FormParameters.encode(params)
    }
}
