import Foundation

/// Turns an accepted Kerberos principal into the username to look up: the realm must be
/// allowed; then the first matching rule, or else the principal without its realm.
public struct PrincipalMapper: Sendable {
    public enum Result: Sendable, Equatable {
        case username(String)
        case realmNotAllowed(realm: String)
        /// No rule produced a usable name (e.g. `alice/admin` with no rule for instances).
        case unmapped
    }

    let realms: Set<String>
    let rules: [(NSRegularExpression, String)]

    public init(realms: [String], rules: [KerberosConfiguration.MappingRule]) {
        self.realms = Set(realms)
        self.rules = rules.compactMap { r in (try? NSRegularExpression(pattern: r.match)).map { ($0, r.replace) } }
    }

    public func map(_ principal: String) -> Result {
        // The realm follows the last unescaped '@' (RFC 1964 §2.1.1 names escape '@' in components as '\@').
        guard let at = Self.realmSeparator(principal) else { return .unmapped }
        let name = String(principal[..<at])
        let realm = String(principal[principal.index(after: at)...])
        guard realms.contains(realm) else { return .realmNotAllowed(realm: realm) }
        var mapped = name
        let range = NSRange(principal.startIndex..., in: principal)
        for (regex, template) in rules {
            if let m = regex.firstMatch(in: principal, range: range) {
                mapped = regex.replacementString(for: m, in: principal, offset: 0, template: template)
                break
            }
        }
        mapped = mapped.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !mapped.isEmpty, mapped.utf8.count <= 256, !mapped.contains("\\"), !mapped.contains("\u{0}") else { return .unmapped }
        return .username(mapped)
    }

    static func realmSeparator(_ principal: String) -> String.Index? {
        var found: String.Index?
        var escaped = false
        for i in principal.indices {
            let c = principal[i]
            if escaped { escaped = false; continue }
            if c == "\\" { escaped = true } else if c == "@" { found = i }
        }
        return found
    }
}
