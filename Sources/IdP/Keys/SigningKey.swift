import COpenSSL
import Crypto
import _CryptoExtras
import Foundation

public enum SigningAlgorithm: String, Sendable, CaseIterable, Codable {
    case rs256 = "RS256"
    case es256 = "ES256"
}

/// A private signing key in memory, with its public JWK.
public struct SigningKey: Sendable {
    enum Material: @unchecked Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ec(P256.Signing.PrivateKey)
    }
    public let kid: String
    public let algorithm: SigningAlgorithm
    let material: Material
    /// The same RSA key loaded into the system OpenSSL, which signs (see `OpenSSLRSASigner`).
    let fastRSA: OpenSSLRSASigner?

    public static func generate(_ algorithm: SigningAlgorithm, random: any RandomSource) throws -> SigningKey {
        let kid = Base64URL.encode(random.bytes(12))
        switch algorithm {
        case .rs256: return SigningKey(kid: kid, algorithm: algorithm, material: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
        case .es256: return SigningKey(kid: kid, algorithm: algorithm, material: .ec(P256.Signing.PrivateKey()))
        }
    }

    /// PKCS#8 / SEC1 DER of the private key, for sealing.
    public var privateDER: Data {
        switch material {
        case .rsa(let k): return k.derRepresentation
        case .ec(let k): return k.derRepresentation
        }
    }

    public init(kid: String, algorithm: SigningAlgorithm, privateDER: Data) throws {
        self.kid = kid
        self.algorithm = algorithm
        switch algorithm {
        case .rs256:
            let k = try _RSA.Signing.PrivateKey(derRepresentation: privateDER)
            material = .rsa(k)
            fastRSA = OpenSSLRSASigner(der: k.derRepresentation)
        case .es256:
            material = .ec(try P256.Signing.PrivateKey(derRepresentation: privateDER))
            fastRSA = nil
        }
    }

    init(kid: String, algorithm: SigningAlgorithm, material: Material) {
        self.kid = kid; self.algorithm = algorithm; self.material = material
        if case .rsa(let k) = material { fastRSA = OpenSSLRSASigner(der: k.derRepresentation) } else { fastRSA = nil }
    }

    public func sign(_ message: Data) throws -> Data {
        switch material {
        case .rsa(let k):
            if let fastRSA, let signature = fastRSA.sign(message) { return signature }
            return try k.signature(for: message, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ec(let k): return try k.signature(for: message).rawRepresentation
        }
    }

    public var publicKey: VerificationKey {
        switch material {
        case .rsa(let k): return VerificationKey(kid: kid, algorithm: algorithm, material: .rsa(k.publicKey))
        case .ec(let k): return VerificationKey(kid: kid, algorithm: algorithm, material: .ec(k.publicKey))
        }
    }
}

/// A public key from the JWKS, able to verify signatures.
public struct VerificationKey: Sendable {
    enum Material: @unchecked Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case ec(P256.Signing.PublicKey)
    }
    public let kid: String
    public let algorithm: SigningAlgorithm
    let material: Material

    public func verify(_ signature: Data, for message: Data) -> Bool {
        switch material {
        case .rsa(let k):
            return k.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: message, padding: .insecurePKCS1v1_5)
        case .ec(let k):
            guard signature.count == 64, let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return k.isValidSignature(sig, for: message)
        }
    }

    /// The public JWK (RFC 7517) as an ordered JSON object string.
    public var jwkJSON: String {
        switch material {
        case .rsa(let k):
            let p = try! k.getKeyPrimitives()
            return #"{"kty":"RSA","use":"sig","alg":"RS256","kid":"\#(kid)","n":"\#(Base64URL.encode(p.modulus))","e":"\#(Base64URL.encode(p.publicExponent))"}"#
        case .ec(let k):
            let raw = k.rawRepresentation  // x || y
            let x = raw.prefix(32), y = raw.suffix(32)
            return #"{"kty":"EC","use":"sig","alg":"ES256","kid":"\#(kid)","crv":"P-256","x":"\#(Base64URL.encode(x))","y":"\#(Base64URL.encode(y))"}"#
        }
    }

    /// Rebuilds a key from a JWK this portal published.
    public init(jwkJSON: String) throws {
        guard let obj = try JSONSerialization.jsonObject(with: Data(jwkJSON.utf8)) as? [String: Any],
              let kid = obj["kid"] as? String, let kty = obj["kty"] as? String
        else { throw JOSEError.malformed("jwk") }
        self.kid = kid
        switch kty {
        case "RSA":
            guard let n = (obj["n"] as? String).flatMap(Base64URL.decode), let e = (obj["e"] as? String).flatMap(Base64URL.decode)
            else { throw JOSEError.malformed("jwk") }
            algorithm = .rs256
            material = .rsa(try _RSA.Signing.PublicKey(n: n, e: e))
        case "EC":
            guard let x = (obj["x"] as? String).flatMap(Base64URL.decode), let y = (obj["y"] as? String).flatMap(Base64URL.decode)
            else { throw JOSEError.malformed("jwk") }
            algorithm = .es256
            material = .ec(try P256.Signing.PublicKey(rawRepresentation: x + y))
        default:
            throw JOSEError.malformed("jwk kty")
        }
    }

    init(kid: String, algorithm: SigningAlgorithm, material: Material) {
        self.kid = kid; self.algorithm = algorithm; self.material = material
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 through the system OpenSSL 3. On CPUs with AVX-512 IFMA its
/// RSA-2048 is about twice as fast as the BoringSSL that swift-crypto embeds, and RS256 is what
/// kube-apiserver expects by default. nil (swift-crypto signs) if the key cannot be loaded.
final class OpenSSLRSASigner: @unchecked Sendable {
    // An EVP_PKEY is immutable once loaded; OpenSSL 3 allows signing with it from many threads.
    private let pkey: OpaquePointer

    init?(der: Data) {
        let loaded: OpaquePointer? = der.withUnsafeBytes { raw -> OpaquePointer? in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return nil }
            var p: UnsafePointer<UInt8>? = base
            return d2i_AutoPrivateKey(nil, &p, raw.count)
        }
        guard let loaded else { return nil }
        guard EVP_PKEY_get_base_id(loaded) == EVP_PKEY_RSA else {
            EVP_PKEY_free(loaded)
            return nil
        }
        pkey = loaded
    }

    deinit { EVP_PKEY_free(pkey) }

    func sign(_ message: Data) -> Data? {
        guard let ctx = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1 else { return nil }
        var length = 0
        let ok = message.withUnsafeBytes { m -> Bool in
            guard EVP_DigestSign(ctx, nil, &length, m.bindMemory(to: UInt8.self).baseAddress, m.count) == 1 else { return false }
            return true
        }
        guard ok, length > 0 else { return nil }
        var signature = Data(count: length)
        let done = signature.withUnsafeMutableBytes { out in
            message.withUnsafeBytes { m in
                EVP_DigestSign(ctx, out.bindMemory(to: UInt8.self).baseAddress, &length, m.bindMemory(to: UInt8.self).baseAddress, m.count) == 1
            }
        }
        guard done else { return nil }
        return signature.prefix(length)
    }
}
