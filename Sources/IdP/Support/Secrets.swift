import Crypto
import Foundation

/// Hashing and comparison of secrets. Every bearer secret the portal issues
/// (refresh tokens, codes, session ids, setup links) has ≥ 256 bits of entropy,
/// so a plain SHA-256 is the right at-rest form: it cannot be brute-forced and it
/// lets lookups stay one indexed query.
public enum Secrets {
    public static func sha256Hex(_ value: String) -> String {
        var value = value
        // Over the string's own UTF-8 bytes: no Data copy (every token lookup hashes one).
        return value.withUTF8 { hex(SHA256.hash(data: UnsafeRawBufferPointer($0))) }
    }

    /// Lowercase hex, written into the string's storage in one pass (appending `Character`s one by
    /// one cost 1.7 % of a refresh: docs/performance.md, tenth steps).
    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let bytes = Array(bytes)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var i = 0
            for b in bytes {
                out[i] = hexDigits[Int(b >> 4)]
                out[i + 1] = hexDigits[Int(b & 0x0f)]
                i += 2
            }
            return i
        }
    }
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEqual<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }

    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(Array(a.utf8), Array(b.utf8))
    }

    /// HMAC-SHA256, base64url. Used to derive values that must be re-computable
    /// without being stored (refresh-token successors).
    public static func hmac(_ key: SymmetricKey, _ message: String) -> String {
        Base64URL.encode(HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: key))
    }

    /// Client secrets must be generated, not chosen: at least this many characters everywhere
    /// (configuration, environment, CLI).
    public static let minClientSecretLength = 32

    /// Salted SHA-256 for machine-generated client secrets ("sha256$salt$hex").
    public static func hashClientSecret(_ secret: String, random: any RandomSource) -> String {
        let salt = Base64URL.encode(random.bytes(16))
        return "sha256$\(salt)$\(sha256Hex(salt + secret))"
    }

    public static func verifyClientSecret(_ secret: String, hash: String) -> Bool {
        let parts = hash.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "sha256" else { return false }
        return constantTimeEqual(sha256Hex(String(parts[1]) + secret), String(parts[2]))
    }
}

extension Secrets {
    /// Input to bcrypt for a password of any length: bcrypt reads only 72 bytes and stops at
    /// NUL, so every password is first reduced to 44 ASCII characters with a keyed SHA-256
    /// (the keyed form means a leaked unsalted SHA-256 of the password cannot be "shucked").
    public static func bcryptInput(_ password: String) -> String {
        let key = SymmetricKey(data: Data("portal-bcrypt-sha256-v1".utf8))
        return Data(HMAC<SHA256>.authenticationCode(for: Data(password.utf8), using: key)).base64EncodedString()
    }
}
