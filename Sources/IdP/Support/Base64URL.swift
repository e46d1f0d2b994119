/// base64url without padding (RFC 4648 §5), as JOSE and PKCE use it. Table-driven: this runs
/// several times per token response, so it avoids Foundation's base64 plus string replacing.
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let input = Array(bytes)
        let outCount = (input.count * 4 + 2) / 3
        return String(unsafeUninitializedCapacity: outCount) { out in
            var o = 0
            var i = 0
            while i + 3 <= input.count {
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out[o] = alphabet[Int(n >> 18 & 63)]; out[o + 1] = alphabet[Int(n >> 12 & 63)]
                out[o + 2] = alphabet[Int(n >> 6 & 63)]; out[o + 3] = alphabet[Int(n & 63)]
                o += 4; i += 3
            }
            switch input.count - i {
            case 1:
                let n = UInt32(input[i]) << 16
                out[o] = alphabet[Int(n >> 18 & 63)]; out[o + 1] = alphabet[Int(n >> 12 & 63)]
                o += 2
            case 2:
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                out[o] = alphabet[Int(n >> 18 & 63)]; out[o + 1] = alphabet[Int(n >> 12 & 63)]
                out[o + 2] = alphabet[Int(n >> 6 & 63)]
                o += 3
            default: break
            }
            return o
        }
    }

    /// Strict decoder: only the base64url alphabet, no padding, no whitespace,
    /// and the unused trailing bits must be zero (so one value has one spelling).
    public static func decode(_ string: some StringProtocol) -> [UInt8]? {
        let s = Array(string.utf8)
        let rest = s.count % 4
        if rest == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 3 / 4)
        var i = 0
        while i + 4 <= s.count {
            let a = values[Int(s[i])], b = values[Int(s[i + 1])], c = values[Int(s[i + 2])], d = values[Int(s[i + 3])]
            guard (a | b | c | d) < 64 else { return nil }
            let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out.append(UInt8(n >> 16 & 0xff)); out.append(UInt8(n >> 8 & 0xff)); out.append(UInt8(n & 0xff))
            i += 4
        }
        switch rest {
        case 2:
            let a = values[Int(s[i])], b = values[Int(s[i + 1])]
            guard (a | b) < 64, b & 0x0f == 0 else { return nil }
            out.append(a << 2 | b >> 4)
        case 3:
            let a = values[Int(s[i])], b = values[Int(s[i + 1])], c = values[Int(s[i + 2])]
            guard (a | b | c) < 64, c & 0x03 == 0 else { return nil }
            out.append(a << 2 | b >> 4); out.append((b & 0x0f) << 4 | c >> 2)
        default: break
        }
        return out
    }
}
