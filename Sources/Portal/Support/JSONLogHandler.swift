import Foundation
import IdP
import Logging

/// One JSON object per line on stderr: time, level, message, label and metadata
/// (request id included). Tokens are never put in metadata.
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String
    static let lock = NSLock()

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var w = JSONObjectWriter()
        w.add("time", Self.timestamp())
        w.add("level", level.rawValue)
        w.add("msg", message.description)
        w.add("logger", label)
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) { w.add(Self.documentedName(k), "\(v)") }
        let line = w.string + "\n"
        Self.lock.withLock { FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Hummingbird tags each request's logger with `hb.request.id`; the documented field (and the
    /// `X-Request-Id` header, and the id on error pages) is `request_id`.
    static func documentedName(_ key: String) -> String { key == "hb.request.id" ? "request_id" : key }

    /// "2026-12-01T12:00:00.123Z", from the broken-down UTC time: an ISO8601DateFormatter per line
    /// was slow, and the first one loaded ICU's data into every portal process (≈ 6 MB of idle RSS).
    static func timestamp(_ date: Date = Date()) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        var whole = time_t(seconds)
        var t = tm()
        gmtime_r(&whole, &t)
        let millis = min(999, Int((date.timeIntervalSince1970 - seconds) * 1000))
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(t.tm_year) + 1900, Int(t.tm_mon) + 1, Int(t.tm_mday),
                      Int(t.tm_hour), Int(t.tm_min), Int(t.tm_sec), millis)
    }
}

enum Logs {
    enum Format: Equatable { case json, console, text }

    /// `auto` (the default): readable lines on a terminal, JSON lines otherwise (a file, a pipe, a
    /// container runtime). `json` always JSON; `text` swift-log's own plain lines.
    static func format(_ configured: String, stderrIsTerminal: Bool) -> Format {
        switch configured {
        case "text": return .text
        case "auto": return stderrIsTerminal ? .console : .json
        default: return .json
        }
    }

    static func bootstrap(format configured: String, level: String) {
        let lvl = Logger.Level(rawValue: level) ?? .info
        let format = format(configured, stderrIsTerminal: isatty(STDERR_FILENO) == 1)
        LoggingSystem.bootstrap { label in
            var h: any LogHandler
            switch format {
            case .json: h = JSONLogHandler(label: label)
            case .console: h = ConsoleLogHandler(label: label)
            case .text: h = StreamLogHandler.standardError(label: label)
            }
            h.logLevel = lvl
            return h
        }
    }
}
