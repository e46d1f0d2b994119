import Foundation

/// Builds a JSON object in insertion order without Foundation's encoder (hot path: every token).
public struct JSONObjectWriter {
    private var out = "{"
    private var first = true

    public init() {}

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

    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        // Fast path (tokens, ids, names): nothing to escape, append in one piece.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5c && $0 != 0x3c && $0 != 0x3e && $0 != 0x26 && $0 != 0xe2 }) {
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
