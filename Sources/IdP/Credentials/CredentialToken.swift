import Foundation

/// The wire form of an application credential:
///
///     kpc_<id: 16 base62>_<secret: 43 base62><checksum: 6 base62>
///
/// - `kpc_` ("Kubernetes portal credential") makes leaked tokens easy to scan for.
/// - The id is the lookup key; the secret (≥ 256 bits) is stored only as a SHA-256.
/// - The CRC-32 checksum over everything before it lets junk be refused without touching storage.
/// Base62 is case-sensitive, so a re-cased, truncated or padded token fails the checksum.
public struct CredentialToken: Sendable, Equatable {
    public static let prefix = "kpc_"
    public let id: String
    public let secret: String

    public init(id: String, secret: String) { self.id = id; self.secret = secret }

    public static func generate(random: any RandomSource) -> CredentialToken {
        CredentialToken(id: Base62.encode(random.bytes(11), length: 16), secret: Base62.encode(random.bytes(32), length: 43))
    }

    public var string: String {
        let body = Self.prefix + id + "_" + secret
        return body + Base62.encode(CRC32.bytes(of: body), length: 6)
    }

    /// Parses and checks the format and checksum. nil for anything else.
    public static func parse(_ token: String) -> CredentialToken? {
        let u = Array(token.utf8)
        // kpc_ (4) + id (16) + _ (1) + secret (43) + checksum (6)
        guard u.count == 70, token.hasPrefix(prefix), u[20] == UInt8(ascii: "_") else { return nil }
        let id = String(decoding: u[4..<20], as: UTF8.self)
        let secret = String(decoding: u[21..<64], as: UTF8.self)
        let checksum = String(decoding: u[64..<70], as: UTF8.self)
        guard Base62.isValid(id), Base62.isValid(secret), Base62.isValid(checksum) else { return nil }
        let body = String(decoding: u[0..<64], as: UTF8.self)
        guard Secrets.constantTimeEqual(Base62.encode(CRC32.bytes(of: body), length: 6), checksum) else { return nil }
        return CredentialToken(id: id, secret: secret)
    }

    public var secretHash: String { Secrets.sha256Hex(secret) }
}

enum Base62 {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Big-endian base-62 of `bytes`, left-padded with '0' to `length` (truncating never happens for the sizes used).
    static func encode(_ bytes: [UInt8], length: Int) -> String {
        var digits: [UInt8] = []
        var num = bytes
        while num.contains(where: { $0 != 0 }) {
            var remainder = 0
            var next: [UInt8] = []
            next.reserveCapacity(num.count)
            for b in num {
                let acc = remainder * 256 + Int(b)
                let q = acc / 62
                remainder = acc % 62
                if !next.isEmpty || q != 0 { next.append(UInt8(q)) }
            }
            digits.append(alphabet[remainder])
            num = next
        }
        while digits.count < length { digits.append(UInt8(ascii: "0")) }
        return String(decoding: digits.reversed(), as: UTF8.self)
    }

    static func isValid(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
        }
    }
}

enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func of(_ s: String) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in s.utf8 { crc = table[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func bytes(of s: String) -> [UInt8] {
        let v = of(s)
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }
}
