import Foundation

/// A validated authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636).
public struct AuthorizationRequest: Sendable, Equatable, Codable {
    public var clientID: String
    public var redirectURI: String
    public var scopes: [String]
    public var state: String?
    public var nonce: String?
    public var codeChallenge: String?
    public var prompt: Set<String>
    public var maxAge: Int?

    public init(clientID: String, redirectURI: String, scopes: [String], state: String? = nil, nonce: String? = nil,
                codeChallenge: String? = nil, prompt: Set<String> = [], maxAge: Int? = nil) {
        self.clientID = clientID; self.redirectURI = redirectURI; self.scopes = scopes; self.state = state
        self.nonce = nonce; self.codeChallenge = codeChallenge; self.prompt = prompt; self.maxAge = maxAge
    }

    public static let supportedScopes: Set<String> = ["openid", "profile", "email", "groups", "offline_access"]
}

/// What the authorization endpoint must do with a request.
public enum AuthorizationCheck: Sendable, Equatable {
    case valid(AuthorizationRequest)
    /// The client or redirect URI cannot be trusted: show a page, never redirect.
    case showError(OAuthError)
    /// Tell the client through its (verified) redirect URI.
    case redirectError(OAuthError, redirectURI: String, state: String?)
}

public enum PKCE {
    /// RFC 7636 §4.1: 43–128 characters of [A-Z a-z 0-9 - . _ ~].
    public static func isValidVerifier(_ v: String) -> Bool {
        (43...128).contains(v.utf8.count) && v.utf8.allSatisfy { isUnreserved($0) }
    }
    /// S256 challenges are base64url SHA-256: exactly 43 characters.
    public static func isValidChallenge(_ c: String) -> Bool {
        c.utf8.count == 43 && Base64URL.decode(c) != nil
    }
    public static func s256(_ verifier: String) -> String {
        Base64URL.encode(SHA256Digest.of(verifier))
    }
    static func isUnreserved(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): return true
        default: return false
        }
    }
}

import Crypto
enum SHA256Digest {
    static func of(_ s: String) -> [UInt8] { Array(SHA256.hash(data: Data(s.utf8))) }
}
