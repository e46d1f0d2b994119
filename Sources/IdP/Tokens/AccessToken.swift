import Crypto
import Foundation

/// Access tokens are for the portal itself: only /userinfo accepts them (kube-apiserver uses
/// the id_token). Nobody else needs to verify them, so they are authenticated with an HMAC
/// under a secret the replicas share instead of a second RSA/ECDSA signature per token
/// response — a refresh costs one asymmetric signature (the id_token), not two.
///
///     kpa_<base64url(claims JSON)>.<base64url(HMAC-SHA256(key, "kpa_" + claims))>
///
/// The `kpa_` prefix makes leaked tokens easy to scan for. Clients treat the token as opaque
/// (RFC 6749 §1.4); the claims are readable but carry nothing secret (subject, session id,
/// client, scope, times).
public struct AccessTokenCodec: Sendable {
    public static let prefix = "kpa_"
    let mac: KeyedMAC

    /// `secret` is the shared server secret; the MAC key is derived from it for this use only.
    public init(secret: SymmetricKey) {
        mac = KeyedMAC(HKDF<SHA256>.deriveKey(inputKeyMaterial: secret, info: Data("portal access token v1".utf8), outputByteCount: 32))
    }

    public struct Claims: Sendable, Equatable {
        public var subject: String
        public var sessionID: String
        public var clientID: String
        public var scopes: [String]
        public var issuedAt: Int
        public var expiresAt: Int
        public var jti: String
    }

    public func seal(_ c: Claims) -> String {
        var w = JSONObjectWriter()
        w.add("sub", c.subject)
        w.add("sid", c.sessionID)
        w.add("client_id", c.clientID)
        w.add("scope", c.scopes.joined(separator: " "))
        w.add("iat", c.issuedAt)
        w.add("exp", c.expiresAt)
        w.add("jti", c.jti)
        let body = Self.prefix + Base64URL.encode(Array(w.string.utf8))
        return body + "." + Base64URL.encode(mac.code(Array(body.utf8)))
    }

    /// The claims of a genuine, unexpired token; nil for anything else (forged, altered,
    /// truncated, expired, or not an access token at all).
    public func open(_ token: String, now: Date) -> Claims? {
        guard token.hasPrefix(Self.prefix), token.utf8.count < 8192, let dot = token.lastIndex(of: ".") else { return nil }
        let body = token[..<dot]
        guard let mac = Base64URL.decode(token[token.index(after: dot)...]), mac.count == 32,
              self.mac.isValid(mac, for: Array(body.utf8)),
              let json = Base64URL.decode(body.dropFirst(Self.prefix.count)),
              let o = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
              let sub = o["sub"] as? String, let sid = o["sid"] as? String, let cid = o["client_id"] as? String,
              let scope = o["scope"] as? String, let iat = o["iat"] as? Int, let exp = o["exp"] as? Int, let jti = o["jti"] as? String
        else { return nil }
        guard TimeInterval(exp) > now.timeIntervalSince1970 else { return nil }
        return Claims(subject: sub, sessionID: sid, clientID: cid, scopes: scope.split(separator: " ").map(String.init),
                      issuedAt: iat, expiresAt: exp, jti: jti)
    }
}
