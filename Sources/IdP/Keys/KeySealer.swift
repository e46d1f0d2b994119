import Crypto
import Foundation

/// Seals private keys at rest with AES-256-GCM under a key-encryption key the operator
/// supplies. Sealed form: "aesgcm:v1:<kek-id>:<base64url(nonce|ciphertext|tag)>".
/// Without a KEK the form is "plain:<base64url(der)>" and the portal warns at every start.
public struct KeySealer: Sendable {
    let kek: SymmetricKey?
    /// Short fingerprint of the KEK, so a wrong one is named as such instead of failing obscurely.
    public let kekID: String?

    public init(secret: Data?) {
        if let secret, !secret.isEmpty {
            let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret),
                                             salt: Data("portal-kek-v1".utf8), info: Data("signing-keys".utf8), outputByteCount: 32)
            kek = key
            kekID = Secrets.hex(SHA256.hash(data: key.withUnsafeBytes { Data($0) } + Data("id".utf8)).prefix(4))
        } else {
            kek = nil; kekID = nil
        }
    }

    public var encrypts: Bool { kek != nil }

    public func seal(_ der: Data) throws -> String {
        guard let kek, let kekID else { return "plain:" + Base64URL.encode(der) }
        let box = try AES.GCM.seal(der, using: kek)
        guard let combined = box.combined else { throw KeySealError.cannotSeal }
        return "aesgcm:v1:\(kekID):" + Base64URL.encode(combined)
    }

    public func open(_ sealed: String) throws -> Data {
        if sealed.hasPrefix("plain:") {
            guard let der = Base64URL.decode(sealed.dropFirst(6)) else { throw KeySealError.corrupt }
            return Data(der)
        }
        let parts = sealed.split(separator: ":", maxSplits: 3)
        guard parts.count == 4, parts[0] == "aesgcm", parts[1] == "v1" else { throw KeySealError.corrupt }
        guard let kek, let kekID else { throw KeySealError.needsKey }
        guard parts[2] == kekID else { throw KeySealError.wrongKey(String(parts[2])) }
        guard let combined = Base64URL.decode(parts[3]) else { throw KeySealError.corrupt }
        return try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: kek)
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
