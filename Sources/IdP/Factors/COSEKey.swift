import Crypto
import Foundation
import _CryptoExtras

/// A credential public key in COSE_Key form (RFC 9052/9053), as authenticators report it in
/// attested credential data. Three algorithms are accepted, the ones browsers ask for:
/// ES256 (ECDSA P-256/SHA-256, DER signatures), EdDSA (Ed25519) and RS256 (RSASSA-PKCS1-v1_5
/// with SHA-256, modulus of at least 2048 bits). Anything else is refused when parsed.
public struct COSEKey: Sendable {
    /// The COSE algorithm identifier: -7 (ES256), -8 (EdDSA) or -257 (RS256).
    public let algorithm: Int
    private let key: Key

    public static let es256 = -7
    public static let edDSA = -8
    public static let rs256 = -257

    /// Largest RSA modulus accepted, to bound verification cost (authenticators use 2048).
    public static let maxRSAModulusBits = 8192

    private enum Key: Sendable {
        case p256(P256.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
        case rsa(_RSA.Signing.PublicKey)
    }

    // COSE labels (RFC 9052 §7.1, RFC 9053 §7.1–7.2, RFC 8230 §4).
    private enum Label {
        static let kty = 1, alg = 3
        static let crv = -1, x = -2, y = -3  // EC2 and OKP
        static let n = -1, e = -2  // RSA
    }

    private enum KeyType {
        static let okp = 1, ec2 = 2, rsa = 3
    }

    private enum Curve {
        static let p256 = 1, ed25519 = 6
    }

    /// Parses the COSE_Key encoded in `bytes` (the whole input must be the one key).
    public init(bytes: [UInt8]) throws {
        let item: CBOR
        do { item = try CBOR.decode(bytes) } catch { throw COSEKeyError.malformed }
        try self.init(cbor: item)
    }

    public init(cbor: CBOR) throws {
        guard cbor.map != nil else { throw COSEKeyError.malformed }
        guard let kty = cbor[Label.kty]?.int else { throw COSEKeyError.malformed }
        // WebAuthn requires alg in credential public keys (§6.5.1.1).
        guard let alg = cbor[Label.alg]?.int else { throw COSEKeyError.malformed }

        switch (kty, alg) {
        case (KeyType.ec2, Self.es256):
            guard cbor[Label.crv]?.int == Curve.p256 else { throw COSEKeyError.unsupportedCurve }
            guard let x = cbor[Label.x]?.bytes, let y = cbor[Label.y]?.bytes, x.count == 32, y.count == 32 else {
                throw COSEKeyError.malformed
            }
            do {
                key = .p256(try P256.Signing.PublicKey(x963Representation: [0x04] + x + y))
            } catch {
                throw COSEKeyError.invalidKey
            }

        case (KeyType.okp, Self.edDSA):
            guard cbor[Label.crv]?.int == Curve.ed25519 else { throw COSEKeyError.unsupportedCurve }
            guard let x = cbor[Label.x]?.bytes, x.count == 32 else { throw COSEKeyError.malformed }
            do {
                key = .ed25519(try Curve25519.Signing.PublicKey(rawRepresentation: x))
            } catch {
                throw COSEKeyError.invalidKey
            }

        case (KeyType.rsa, Self.rs256):
            guard let n = cbor[Label.n]?.bytes, let e = cbor[Label.e]?.bytes, !n.isEmpty, !e.isEmpty else {
                throw COSEKeyError.malformed
            }
            let modulus = n.drop { $0 == 0 }
            let bits = modulus.isEmpty ? 0 : (modulus.count - 1) * 8 + (8 - modulus[modulus.startIndex].leadingZeroBitCount)
            guard bits >= 2048 else { throw COSEKeyError.weakKey }
            guard bits <= Self.maxRSAModulusBits, e.count <= 8 else { throw COSEKeyError.invalidKey }
            do {
                // Refuses moduli below 2048 bits itself too; BoringSSL checks e (odd, small).
                key = .rsa(try _RSA.Signing.PublicKey(n: Data(n), e: Data(e)))
            } catch {
                throw COSEKeyError.invalidKey
            }

        default:
            throw COSEKeyError.unsupportedAlgorithm(alg)
        }
        algorithm = alg
    }

    /// Whether `signature` is this key's signature over `data` (hashed with SHA-256 for ES256
    /// and RS256; Ed25519 signs the message itself). ES256 signatures are ASN.1 DER, as
    /// WebAuthn authenticators produce them — not the raw r‖s form JOSE uses.
    public func verify(signature: [UInt8], over data: [UInt8]) -> Bool {
        switch key {
        case .p256(let publicKey):
            guard let sig = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return publicKey.isValidSignature(sig, for: data)
        case .ed25519(let publicKey):
            return publicKey.isValidSignature(signature, for: data)
        case .rsa(let publicKey):
            return publicKey.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: data, padding: .insecurePKCS1v1_5)
        }
    }
}

public enum COSEKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a COSE_Key map, or a required parameter is missing or of the wrong type or size.
    case malformed
    /// A key type / algorithm pair other than EC2/ES256, OKP/EdDSA, RSA/RS256.
    case unsupportedAlgorithm(Int)
    case unsupportedCurve
    /// RSA modulus under 2048 bits.
    case weakKey
    /// Well-formed but not a valid key (a point not on the curve, an RSA key BoringSSL refuses).
    case invalidKey

    public var description: String {
        switch self {
        case .malformed: "malformed COSE key"
        case .unsupportedAlgorithm(let alg): "unsupported COSE algorithm \(alg)"
        case .unsupportedCurve: "unsupported curve"
        case .weakKey: "RSA key shorter than 2048 bits"
        case .invalidKey: "invalid public key"
        }
    }
}
