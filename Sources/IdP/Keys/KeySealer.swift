import Crypto
import _CryptoExtras
import Foundation

/// Seals private keys and shared secrets at rest with AES-256-GCM under a key-encryption key
/// (KEK) the operator supplies. Sealed forms:
/// - "aesgcm:v2:<kek-id>:<base64url(nonce|ciphertext|tag)>": the KEK is derived with scrypt
///   (N=2^15, r=8, p=1, 32 MiB) from the operator's secret and a random per-installation salt,
///   so every guess at the secret costs a full scrypt — nothing stored is fast to test against.
/// - "aesgcm:v1:…": the HKDF derivation of earlier versions; still read, and resealed as v2.
/// - "plain:<base64url(der)>" without a KEK; the portal warns at every start and reseals once a KEK exists.
public struct KeySealer: Sendable {
    /// The documented minimum length of the operator's secret, on every input path.
    public static let minimumSecretLength = 32
    static let scryptRounds = 1 << 15

    let kek: SymmetricKey?
    /// Short fingerprint of the derived KEK, so a wrong one is named as such instead of failing obscurely.
    public let kekID: String?
    /// The v1 (HKDF) key, only to read what earlier versions sealed.
    let legacy: (key: SymmetricKey, id: String)?

    /// `salt`: the installation's KDF salt (see `namedSecret("kek-salt")`); required with a secret.
    public init(secret: Data?, salt: Data = Data()) throws {
        if let secret, !secret.isEmpty {
            let key = try KDF.Scrypt.deriveKey(from: secret, salt: Data("portal-kek-v2".utf8) + salt, outputByteCount: 32,
                                               rounds: Self.scryptRounds, blockSize: 8, parallelism: 1)
            kek = key
            kekID = Self.fingerprint(key)
            let v1 = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret),
                                            salt: Data("portal-kek-v1".utf8), info: Data("signing-keys".utf8), outputByteCount: 32)
            legacy = (v1, Self.fingerprint(v1))
        } else {
            kek = nil; kekID = nil; legacy = nil
        }
    }

    static func fingerprint(_ key: SymmetricKey) -> String {
        Secrets.hex(SHA256.hash(data: key.withUnsafeBytes { Data($0) } + Data("id".utf8)).prefix(4))
    }

    public var encrypts: Bool { kek != nil }

    public func seal(_ der: Data) throws -> String {
        guard let kek, let kekID else { return "plain:" + Base64URL.encode(der) }
        let box = try AES.GCM.seal(der, using: kek)
        guard let combined = box.combined else { throw KeySealError.cannotSeal }
        return "aesgcm:v2:\(kekID):" + Base64URL.encode(combined)
    }

    public func open(_ sealed: String) throws -> Data {
        if sealed.hasPrefix("plain:") {
            guard let der = Base64URL.decode(sealed.dropFirst(6)) else { throw KeySealError.corrupt }
            return Data(der)
        }
        let parts = sealed.split(separator: ":", maxSplits: 3)
        guard parts.count == 4, parts[0] == "aesgcm", parts[1] == "v1" || parts[1] == "v2" else { throw KeySealError.corrupt }
        guard let kek, let kekID, let legacy else { throw KeySealError.needsKey }
        let (key, id) = parts[1] == "v2" ? (kek, kekID) : (legacy.key, legacy.id)
        guard parts[2] == id else { throw KeySealError.wrongKey(String(parts[2])) }
        guard let combined = Base64URL.decode(parts[3]) else { throw KeySealError.corrupt }
        return try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key)
    }

    /// Stored in plain text, or under an older derivation: worth sealing again when a KEK is configured.
    public func needsReseal(_ sealed: String) -> Bool {
        encrypts && !sealed.hasPrefix("aesgcm:v2:")
    }

    public static func isPlain(_ sealed: String) -> Bool { sealed.hasPrefix("plain:") }
}

public enum KeySealError: Error, CustomStringConvertible {
    case cannotSeal, corrupt, needsKey, wrongKey(String)
    public var description: String {
        switch self {
        case .cannotSeal: return "cannot seal signing key"
        case .corrupt: return "a stored signing key is corrupt"
        case .needsKey: return "signing keys in the database are encrypted, but no key-encryption key is configured (signing.encryption_key_file or PORTAL_KEY_ENCRYPTION_KEY)"
        case .wrongKey(let id): return "signing keys in the database were encrypted with another key-encryption key (id \(id)); configure that one"
        }
    }
}

/// The derived keys never appear in any description.
extension KeySealer: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "KeySealer(encrypts: \(encrypts), kekID: \(kekID ?? "none"))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["encrypts": encrypts, "kekID": kekID as Any], displayStyle: .struct) }
}
