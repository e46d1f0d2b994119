import Foundation

/// Builds a JSON object in insertion order without Foundation's encoder (hot path: every token).
public struct JSONObjectWriter {
    private var out: String
    private var first = true

    /// `capacity`: the bytes the object will likely take, so it is not regrown on the way (an
    /// id_token's claims, a token response with three tokens in it).
    public init(reserving capacity: Int = 256) {
        out = ""
        out.reserveCapacity(capacity)
        out.append("{")
    }

    private mutating func key(_ k: String) {
        if !first { out.append(",") }
        first = false
        Self.appendString(k, to: &out)
        out.append(":")
    }

    public mutating func add(_ k: String, _ v: String) { key(k); Self.appendString(v, to: &out) }
    public mutating func add(_ k: String, _ v: Int) { key(k); out.append(String(v)) }
    public mutating func add(_ k: String, _ v: Bool) { key(k); out.append(v ? "true" : "false") }
    public mutating func add(_ k: String, _ v: [String]) {
        key(k)
        out.append("[")
        for (i, s) in v.enumerated() {
            if i > 0 { out.append(",") }
            Self.appendString(s, to: &out)
        }
        out.append("]")
    }
    /// Adds pre-rendered JSON (an object or array this code produced).
    public mutating func addRaw(_ k: String, _ json: String) { key(k); out.append(json) }
    public mutating func addIfPresent(_ k: String, _ v: String?) { if let v { add(k, v) } }

    public var string: String { out + "}" }
    public var data: Data { Data(string.utf8) }

    /// Whether `s` holds nothing to escape: no control character, quote, backslash, `<`, `>`, `&`,
    /// nor the lead byte of U+2028/2029. Over the bytes in place (a JWT is ≈ 800 of them; the
    /// UTF-8 view's iterator cost 2 % of a refresh).
    static func isPlain(_ s: String) -> Bool {
        @inline(__always) func plain(_ b: UInt8) -> Bool {
            b >= 0x20 && b != 0x22 && b != 0x5c && b != 0x3c && b != 0x3e && b != 0x26 && b != 0xe2
        }
        if let answer = s.utf8.withContiguousStorageIfAvailable({ bytes in
            for b in bytes where !plain(b) { return false }
            return true
        }) { return answer }
        return s.utf8.allSatisfy(plain)
    }

    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        // Fast path (tokens, ids, names): nothing to escape, append in one piece.
        if isPlain(s) {
            out.append(s)
            out.append("\"")
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            case "<": out.append("\\u003c")  // safe inside HTML too
            case ">": out.append("\\u003e")
            case "&": out.append("\\u0026")
            default:
                if u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029 {
                    out.append(String(format: "\\u%04x", u.value))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append("\"")
    }
}
