import Foundation

/// Parameters of a query string or an application/x-www-form-urlencoded body.
/// Keeps every occurrence so duplicates can be refused (RFC 6749 §3.1, §3.2).
public struct FormParameters: Sendable, Equatable {
    public private(set) var pairs: [(String, String)] = []

    public init(_ pairs: [(String, String)] = []) { self.pairs = pairs }

    /// Parses `a=1&b=two+words&c=%2F`. Returns nil for malformed percent-encoding, invalid UTF-8,
    /// or control characters other than tab, CR and LF (a NUL never gets past here).
    public static func parse(_ raw: String) -> FormParameters? {
        var out: [(String, String)] = []
        for part in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = decode(kv[0]) else { return nil }
            let v = kv.count > 1 ? decode(kv[1]) : ""
            guard let v else { return nil }
            if Identifiers.hasControlCharacters(k) || Identifiers.hasForbiddenControls(v) { return nil }
            if k.isEmpty { continue }
            out.append((k, v))
        }
        return FormParameters(out)
    }

    public static func decode(_ s: Substring) -> String? {
        // Nothing encoded (grant types, client ids, base64url tokens): the text as it is, already valid UTF-8.
        if !s.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) { return String(s) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let c = it.next() {
            switch c {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            default: bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    public static func == (a: FormParameters, b: FormParameters) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0 == $1 }
    }

    /// The single value of `name`; nil when absent. Empty values count as absent (RFC 6749 §3.1).
    /// Throws `invalid_request` when the parameter appears more than once.
    public func single(_ name: String) throws(OAuthError) -> String? {
        var found: String?
        var count = 0
        for (k, v) in pairs where k == name {
            count += 1
            found = v
        }
        if count > 1 { throw OAuthError.invalidRequest("parameter '\(name)' is repeated") }
        guard let found, !found.isEmpty else { return nil }
        // Protocol parameters are identifiers, URIs and tokens: no control character is ever valid.
        if Identifiers.hasControlCharacters(found) { throw OAuthError.invalidRequest("parameter '\(name)' contains control characters") }
        return found
    }

    public func required(_ name: String) throws(OAuthError) -> String {
        guard let v = try single(name) else { throw OAuthError.invalidRequest("missing parameter '\(name)'") }
        return v
    }

    /// First value without the duplicate check (for UI forms).
    public subscript(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }

    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    public static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }
}
