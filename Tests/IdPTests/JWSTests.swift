import Foundation
import IdP
import Testing

@Suite("JWS verification")
struct JWSTests {
    static func segments(_ jwt: String) -> [String] { jwt.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
    static func encode(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

    @Test func aTamperedPayloadIsRefused() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let parts = Self.segments(tokens.idToken)
            var claims = try await h.claims(tokens.idToken)
            claims["groups"] = ["system:masters"]
            let forged = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims)))
            let keys = h.keys.verificationKeys()
            #expect(throws: JOSEError.badSignature) { try JWS.verify(parts[0] + "." + forged + "." + parts[2], keys: keys) }
        }
    }

    @Test func aTamperedSignatureIsRefused() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            var parts = Self.segments(tokens.idToken)
            var sig = try #require(Base64URL.decode(parts[2]))
            sig[sig.count / 2] ^= 0x01
            parts[2] = Base64URL.encode(sig)
            let keys = h.keys.verificationKeys()
            #expect(throws: JOSEError.badSignature) { try JWS.verify(parts.joined(separator: "."), keys: keys) }
            #expect(throws: JOSEError.self) { try JWS.verify(Self.segments(tokens.idToken)[0...1].joined(separator: ".") + ".", keys: keys) }
        }
    }

    @Test func algNoneIsRefused() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let kid = try #require(try Harness.header(tokens.idToken)["kid"] as? String)
            let payload = Self.segments(tokens.idToken)[1]
            let keys = h.keys.verificationKeys()
            for header in [#"{"alg":"none","kid":"\#(kid)"}"#, #"{"alg":"none"}"#, #"{"alg":"None","kid":"\#(kid)"}"#] {
                #expect(throws: JOSEError.algorithmNotAllowed) { try JWS.verify(Self.encode(header) + "." + payload + ".", keys: keys) }
            }
        }
    }

    @Test func hmacAndMismatchedAlgorithmsAreRefused() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let parts = Self.segments(tokens.idToken)
            let kid = try #require(try Harness.header(tokens.idToken)["kid"] as? String)
            let keys = h.keys.verificationKeys()
            let hs = Self.encode(#"{"alg":"HS256","kid":"\#(kid)","typ":"JWT"}"#)
            #expect(throws: JOSEError.algorithmNotAllowed) { try JWS.verify(hs + "." + parts[1] + "." + parts[2], keys: keys) }
            // The key is ES256; a header claiming RS256 for it is refused.
            let rs = Self.encode(#"{"alg":"RS256","kid":"\#(kid)","typ":"JWT"}"#)
            #expect(throws: JOSEError.algorithmNotAllowed) { try JWS.verify(rs + "." + parts[1] + "." + parts[2], keys: keys) }
        }
    }

    @Test func anUnknownKidOrMalformedTokenIsRefused() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let parts = Self.segments(tokens.idToken)
            let keys = h.keys.verificationKeys()
            let other = Self.encode(#"{"alg":"ES256","kid":"someone-else","typ":"JWT"}"#)
            #expect(throws: JOSEError.unknownKey) { try JWS.verify(other + "." + parts[1] + "." + parts[2], keys: keys) }
            #expect(throws: JOSEError.self) { try JWS.verify("not-a-jwt", keys: keys) }
            #expect(throws: JOSEError.self) { try JWS.verify(tokens.idToken + ".extra", keys: keys) }
            #expect(throws: JOSEError.self) { try JWS.verify(tokens.idToken, keys: [:]) }
        }
    }

    @Test func aTokenVerifiesAgainstTheKeyRebuiltFromTheJWKS() async throws {
        try await Harness.with { h async throws in
            let tokens = try await h.signIn()
            let kid = try #require(try Harness.header(tokens.idToken)["kid"] as? String)
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(h.keys.jwks().utf8)) as? [String: Any])
            let jwk = try #require((doc["keys"] as? [[String: Any]])?.first { $0["kid"] as? String == kid })
            #expect(jwk["kty"] as? String == "EC" && jwk["crv"] as? String == "P-256" && jwk["alg"] as? String == "ES256")
            let key = try VerificationKey(jwkJSON: String(data: try JSONSerialization.data(withJSONObject: jwk), encoding: .utf8)!)
            _ = try JWS.verify(tokens.idToken, keys: [kid: key])
        }
    }
}
