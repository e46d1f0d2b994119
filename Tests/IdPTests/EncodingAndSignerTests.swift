import Crypto
import Foundation
@testable import IdP
import Testing

@Suite("Base64URL, access tokens and the OpenSSL RSA signer")
struct EncodingAndSignerTests {
    /// Foundation's base64 with the URL alphabet and no padding: the reference the table code must match.
    static func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test func base64urlMatchesFoundationForEveryLengthAndRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        for n in 0..<200 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let encoded = Base64URL.encode(bytes)
            #expect(encoded == Self.reference(bytes))
            #expect(Base64URL.decode(encoded) == bytes)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
    }

    @Test func base64urlDecoderIsStrict() {
        for bad in ["A", "AAAAA", "AB==", "AB=", "A+B/", "AB C", "ABC\n", "Zg==", "ä"] {
            #expect(Base64URL.decode(bad) == nil, "\(bad)")
        }
        // Non-canonical: the unused low bits of the last character must be zero.
        #expect(Base64URL.decode("Zg") == [0x66])
        #expect(Base64URL.decode("Zh") == nil)
        #expect(Base64URL.decode("Zm8") == [0x66, 0x6f])
        #expect(Base64URL.decode("Zm9") == nil)
        #expect(Base64URL.decode("") == [])
    }

    static let codec = AccessTokenCodec(secret: SymmetricKey(data: Array(repeating: UInt8(7), count: 32)))
    static let claims = AccessTokenCodec.Claims(subject: "u-1", sessionID: "fam-1", clientID: "kubernetes",
                                                scopes: ["openid", "groups"], issuedAt: 1_000, expiresAt: 1_060, jti: "j1")

    @Test func accessTokensOpenOnlyGenuineAndUnexpired() throws {
        let token = Self.codec.seal(Self.claims)
        #expect(token.hasPrefix("kpa_"))
        #expect(Self.codec.open(token, now: Date(timeIntervalSince1970: 1_059)) == Self.claims)
        #expect(Self.codec.open(token, now: Date(timeIntervalSince1970: 1_060)) == nil)  // expired at exp
        // Another installation's secret does not open it.
        let other = AccessTokenCodec(secret: SymmetricKey(data: Array(repeating: UInt8(8), count: 32)))
        #expect(other.open(token, now: Date(timeIntervalSince1970: 1_000)) == nil)
        // Any flipped character anywhere breaks it.
        let chars = Array(token)
        for i in stride(from: 4, to: chars.count, by: 7) where chars[i] != "." {
            var c = chars
            c[i] = c[i] == "A" ? "B" : "A"
            #expect(Self.codec.open(String(c), now: Date(timeIntervalSince1970: 1_000)) == nil)
        }
        // Claims of a sealed token re-used with a different body.
        var longer = Self.claims
        longer.expiresAt = 9_999_999
        let mac = token.split(separator: ".")[1]
        let body = Self.codec.seal(longer).split(separator: ".")[0]
        #expect(Self.codec.open("\(body).\(mac)", now: Date(timeIntervalSince1970: 1_000)) == nil)
        for junk in ["", "kpa_", "kpa_.", "kpa_x.y", token + "A", "Bearer " + token] {
            #expect(Self.codec.open(junk, now: Date(timeIntervalSince1970: 1_000)) == nil)
        }
    }

    @Test func openSSLSignaturesVerifyWithTheSwiftCryptoPublicKeyAndJWKS() async throws {
        let key = try SigningKey.generate(.rs256, random: SystemRandom())
        #expect(key.fastRSA != nil, "the system OpenSSL must load the key")
        let message = Data("header.payload".utf8)
        let signature = try key.sign(message)
        #expect(signature.count == 256)
        #expect(key.publicKey.verify(signature, for: message))
        #expect(!key.publicKey.verify(signature, for: Data("header.payloaD".utf8)))
        // PKCS#1 v1.5 is deterministic: OpenSSL and swift-crypto produce the same bytes.
        guard case .rsa(let k) = key.material else { Issue.record("not RSA"); return }
        #expect(try k.signature(for: message, padding: .insecurePKCS1v1_5).rawRepresentation == signature)
        // A key reloaded from its sealed DER signs identically.
        let reloaded = try SigningKey(kid: key.kid, algorithm: .rs256, privateDER: key.privateDER)
        #expect(try reloaded.sign(message) == signature)
        // Junk is not a key.
        #expect(OpenSSLRSASigner(der: Data([0x30, 0x03, 0x02, 0x01, 0x00])) == nil)
        #expect(OpenSSLRSASigner(der: P256.Signing.PrivateKey().derRepresentation) == nil)
    }
}
