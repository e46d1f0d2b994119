import Foundation

/// Search filters built from untrusted input (RFC 4515).
public enum LDAPFilter {
    /// Escapes a value for use inside a filter assertion (RFC 4515 §3): `*`, `(`, `)`, `\` and NUL
    /// become `\2a`, `\28`, `\29`, `\5c`, `\00`; every other byte, UTF-8 included, is kept as is.
    public static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "*": out += "\\2a"
            case "(": out += "\\28"
            case ")": out += "\\29"
            case "\\": out += "\\5c"
            case "\u{0}": out += "\\00"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `template` with each `{name}` replaced by the escaped value.
    public static func substitute(_ template: String, _ values: [String: String]) -> String {
        var out = template
        for (k, v) in values { out = out.replacingOccurrences(of: "{\(k)}", with: escape(v)) }
        return out
    }

    /// `(&a b)` without wrapping a filter that is absent.
    public static func and(_ filters: String?...) -> String {
        let parts = filters.compactMap { $0 }.filter { !$0.isEmpty }
        if parts.count == 1 { return parts[0] }
        return "(&" + parts.joined() + ")"
    }

    /// A light syntax check for configured filters: parenthesised and balanced (escapes respected).
    public static func isWellFormed(_ filter: String) -> Bool {
        guard filter.hasPrefix("("), filter.hasSuffix(")") else { return false }
        var depth = 0
        var escaped = false
        for ch in filter.unicodeScalars {
            if escaped { escaped = false; continue }
            switch ch {
            case "\\": escaped = true
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth < 0 { return false }
            default: break
            }
        }
        return depth == 0 && !escaped
    }
}

/// Distinguished names (RFC 4514), only as far as the portal needs them.
public enum LDAPDN {
    /// The attribute type and value of the first RDN, unescaped: `cn=dev\,ops,ou=groups` → ("cn", "dev,ops").
    /// Multi-valued RDNs (`a=1+b=2`) give their first part.
    public static func firstRDN(_ dn: String) -> (type: String, value: String)? {
        let bytes = Array(dn.utf8)
        guard let eq = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
        let type = String(decoding: bytes[..<eq], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        var value: [UInt8] = []
        var i = eq + 1
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\\"), i + 1 < bytes.count {
                if i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                    value.append(h << 4 | l); i += 3; continue
                }
                value.append(bytes[i + 1]); i += 2; continue
            }
            if b == UInt8(ascii: ",") || b == UInt8(ascii: "+") || b == UInt8(ascii: ";") { break }
            value.append(b); i += 1
        }
        guard !type.isEmpty else { return nil }
        return (type, String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespaces))
    }
}
