import Foundation

/// base64url without padding (RFC 4648 §5), as JOSE and PKCE use it.
public enum Base64URL {
    public static func encode<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Strict decoder: only the base64url alphabet, no padding, no whitespace,
    /// and the unused trailing bits must be zero (so one value has one spelling).
    public static func decode(_ string: some StringProtocol) -> [UInt8]? {
        var s = ""
        s.reserveCapacity(string.utf8.count + 3)
        for c in string.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                s.unicodeScalars.append(Unicode.Scalar(c))
            case UInt8(ascii: "-"): s.append("+")
            case UInt8(ascii: "_"): s.append("/")
            default: return nil
            }
        }
        switch s.utf8.count % 4 {
        case 0: break
        case 2: s += "=="
        case 3: s += "="
        default: return nil
        }
        guard let data = Data(base64Encoded: s) else { return nil }
        let bytes = [UInt8](data)
        // Reject non-canonical encodings (non-zero padding bits).
        guard encode(bytes) == String(string) else { return nil }
        return bytes
    }
}
