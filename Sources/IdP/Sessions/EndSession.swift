import Foundation

/// OpenID Connect RP-Initiated Logout 1.0 (§2, §3): what a request to the end_session_endpoint
/// may do. The portal redirects back only for a verified `id_token_hint` and a
/// `post_logout_redirect_uri` registered, exactly, for the client the hint was issued to.
public struct EndSessionRequest: Sendable, Equatable {
    /// Who the RP says is signing out, from a verified hint (expired hints count: §2).
    public struct Hint: Sendable, Equatable {
        public var subject: String
        public var sessionID: String?
        public var clientID: String
    }

    public var hint: Hint?
    /// Where to send the browser afterwards (with `state`), or nil: show the portal's own page.
    public var redirect: String?
    /// Why the portal will not redirect, for the confirmation page (nil when it will or none was asked).
    public var noRedirectReason: String?
    public var clientName: String?
}

public enum EndSessionCheck: Sendable, Equatable {
    case valid(EndSessionRequest)
    /// Refused outright (400): a hint from another issuer, a forged or altered one, a client_id that contradicts it.
    case refused(String)
}

extension Provider {
    public func checkEndSession(_ p: FormParameters) async throws -> EndSessionCheck {
        let hintToken: String?, uri: String?, state: String?, clientID: String?
        do {
            hintToken = try p.single("id_token_hint"); uri = try p.single("post_logout_redirect_uri")
            state = try p.single("state"); clientID = try p.single("client_id")
        } catch { return .refused("a parameter was sent more than once") }
        var out = EndSessionRequest()
        if let hintToken, !hintToken.isEmpty {
            switch verifyHint(hintToken) {
            case .refused(let why): return .refused(why)
            case .unverifiable: break
            case .hint(let h):
                if let clientID, !clientID.isEmpty, clientID != h.clientID {
                    return .refused("client_id does not match the client the id_token_hint was issued to")
                }
                out.hint = h
            }
        }
        let named = out.hint?.clientID ?? clientID
        var client: Client?
        if let named, !named.isEmpty { client = try await clients.client(id: named) }
        out.clientName = client?.name
        guard let uri, !uri.isEmpty else { return .valid(out) }
        if out.hint == nil {
            out.noRedirectReason = "The request did not prove which application sent it, so the portal will not send you back to \(uri)."
        } else if let client, client.postLogoutRedirectURIs.contains(uri) {
            var params: [(String, String)] = []
            if let state { params.append(("state", state)) }
            out.redirect = Self.appendQuery(uri, params)
        } else {
            out.noRedirectReason = "\(uri) is not registered as a place to return to after signing out, so the portal will not send you there."
        }
        return .valid(out)
    }

    enum HintResult { case hint(EndSessionRequest.Hint), unverifiable, refused(String) }

    /// Verifies an id_token this portal signed; its expiry is not checked (§2). A hint naming this
    /// issuer but signed by a key no longer published cannot be checked (an old session, or a forgery):
    /// it is treated as no hint at all — the person is asked, and never redirected.
    func verifyHint(_ token: String) -> HintResult {
        guard token.utf8.count <= 16_384 else { return .refused("the id_token_hint is too large") }
        let verified: JWS.Verified
        do { verified = try JWS.verify(token, keys: keys.verificationKeys()) } catch let e as JOSEError {
            guard e == .unknownKey else { return .refused("the id_token_hint is not a valid token of this portal (\(e.description))") }
            let parts = token.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let payload = Base64URL.decode(parts[1]),
                  let o = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any], o["iss"] as? String == issuer
            else { return .refused("the id_token_hint was issued by another issuer") }
            return .unverifiable
        } catch { return .refused("the id_token_hint is malformed") }
        guard let o = try? JSONSerialization.jsonObject(with: verified.payload) as? [String: Any] else {
            return .refused("the id_token_hint is malformed")
        }
        guard let iss = o["iss"] as? String, iss == issuer else { return .refused("the id_token_hint was issued by another issuer") }
        guard let sub = o["sub"] as? String, !sub.isEmpty else { return .refused("the id_token_hint has no subject") }
        let aud: String?
        if let a = o["aud"] as? String { aud = a } else if let a = o["aud"] as? [String], a.count == 1 { aud = a[0] } else { aud = nil }
        guard let aud else { return .refused("the id_token_hint has no single audience") }
        return .hint(.init(subject: sub, sessionID: o["sid"] as? String, clientID: aud))
    }
}
