import Foundation
import Logging

/// One readable line per event, for a person watching a terminal:
/// `2026-05-01T12:00:00.123Z INFO     portal: portal listening address=127.0.0.1:8080`.
/// The same fields as the JSON lines (metadata sorted, `request_id` by its documented name), and
/// the same redaction: values print through their own descriptions, which hide secrets. Control
/// characters are escaped, so one event is always one line.
struct ConsoleLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        let line = Self.line(time: JSONLogHandler.timestamp(), level: level, label: label, message: message.description, metadata: merged) + "\n"
        JSONLogHandler.lock.withLock { FileHandle.standardError.write(Data(line.utf8)) }
    }

    static func line(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        let name = level.rawValue.uppercased()
        var out = time + " " + name + String(repeating: " ", count: max(1, 9 - name.count)) + label + ": " + escaped(message)
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            out += " " + escaped(JSONLogHandler.documentedName(k)) + "=" + value("\(v)")
        }
        return out
    }

    /// Bare when it is one plain word, quoted otherwise.
    static func value(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "\\" && $0 != "=" }
        if plain { return s }
        return "\"" + escaped(s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")) + "\""
    }

    /// Control characters as escapes: no value can start a line of its own.
    static func escaped(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u == "\u{2028}" || u == "\u{2029}":
                out += String(format: "\\u{%X}", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
