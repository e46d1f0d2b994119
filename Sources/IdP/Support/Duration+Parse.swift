import Foundation

/// Durations in configuration: "90s", "15m", "12h", "7d", "1h30m" or a bare number of seconds.
public enum DurationParser {
    public static func seconds(_ text: String) -> TimeInterval? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return nil }
        if let n = Int(t), n >= 0 { return TimeInterval(n) }
        var total: Double = 0
        var number = ""
        for c in t {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let v = Double(number), v >= 0 else { return nil }
            switch c {
            case "s": total += v
            case "m": total += v * 60
            case "h": total += v * 3600
            case "d": total += v * 86400
            default: return nil
            }
            number = ""
        }
        guard number.isEmpty else { return nil }
        return total
    }

    public static func format(_ seconds: TimeInterval) -> String {
        let s = Int(seconds)
        if s % 86400 == 0 && s >= 86400 { return "\(s / 86400)d" }
        if s % 3600 == 0 && s >= 3600 { return "\(s / 3600)h" }
        if s % 60 == 0 && s >= 60 { return "\(s / 60)m" }
        return "\(s)s"
    }

    /// Words for people: "15 minutes", "12 hours", "1 minute".
    public static func words(_ seconds: TimeInterval) -> String {
        let s = Int(seconds)
        func unit(_ n: Int, _ name: String) -> String { n == 1 ? "1 \(name)" : "\(n) \(name)s" }
        if s % 86400 == 0 && s >= 86400 { return unit(s / 86400, "day") }
        if s % 3600 == 0 && s >= 3600 { return unit(s / 3600, "hour") }
        if s % 60 == 0 && s >= 60 { return unit(s / 60, "minute") }
        return unit(s, "second")
    }
}
