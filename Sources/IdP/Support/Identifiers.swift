import Foundation

/// Text that names something (a client id, a username, a code, a request id) never carries
/// control characters: C libraries and databases may cut it at a NUL, and logs and pages would
/// print the rest. Such input is refused at the edge, before any lookup.
public enum Identifiers {
    /// C0 controls (NUL, tab, newlines …), DEL and C1 controls.
    public static func hasControlCharacters(_ s: some StringProtocol) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || ($0.value >= 0x7f && $0.value < 0xa0) }
    }

    /// Controls other than tab, CR and LF (which free text such as a description may hold).
    public static func hasForbiddenControls(_ s: some StringProtocol) -> Bool {
        s.unicodeScalars.contains { v in
            let c = v.value
            return (c < 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) || (c >= 0x7f && c < 0xa0)
        }
    }

    /// Text a client chose (a User-Agent, an address) made fit to store and show: control
    /// characters removed, surrounding spaces trimmed, at most `limit` characters.
    public static func printable(_ s: some StringProtocol, limit: Int = 200) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: s.unicodeScalars.filter { !($0.value < 0x20 || ($0.value >= 0x7f && $0.value < 0xa0)) })
        return String(String(scalars).trimmingCharacters(in: .whitespaces).prefix(limit))
    }
}
