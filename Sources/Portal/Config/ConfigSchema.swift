import Foundation

/// One key of the configuration file: where it sits, what it takes, its default and what it means.
/// `ConfigSchema.keys` declares every key once. The readers accept exactly these keys and take
/// their ranges and choices from here; the example file and docs/configuration.md are rendered
/// from them (`portal docs config-example`, `portal docs config-reference`).
struct ConfigKey: Sendable {
    enum Kind: Sendable, Equatable {
        /// A mapping of further keys.
        case section
        /// A list of mappings; the keys of each item are declared under `path[]`.
        case sections
        case string
        case strings
        case bool
        case int(ClosedRange<Int>)
        case duration(ClosedRange<TimeInterval>)
        case choice([String])
    }

    enum Secret: Sendable, Equatable {
        case none
        /// The value itself may be secret (a database URL with a password).
        case value
        /// The value names a file holding a secret.
        case file
        /// The value names an environment variable holding a secret.
        case variable
    }

    /// Dotted, with `[]` for the items of a list: `kubernetes.clusters[].name`.
    let path: String
    let kind: Kind
    /// The default, written as YAML; nil when there is none (an optional or a required key).
    let defaultValue: String?
    /// A value to show, commented out, in the example file when there is no default.
    let example: String?
    let meaning: String
    let secret: Secret
    /// An environment variable that overrides the key.
    let env: String?
    /// Required whenever its section is present.
    let required: Bool
    /// A section the example file shows commented out: it needs files or servers of its own.
    let optionalSection: Bool

    init(_ path: String, _ kind: Kind, default defaultValue: String? = nil, example: String? = nil, secret: Secret = .none,
         env: String? = nil, required: Bool = false, optionalSection: Bool = false, _ meaning: String) {
        self.path = path; self.kind = kind; self.defaultValue = defaultValue; self.example = example
        self.secret = secret; self.env = env; self.required = required; self.optionalSection = optionalSection
        self.meaning = meaning
    }

    /// The last component: `name` for `kubernetes.clusters[].name`.
    var name: String { path.split(separator: ".").last.map(String.init) ?? path }
    /// `kubernetes.clusters[]` for `kubernetes.clusters[].name`; "" at the top.
    var parent: String { path.split(separator: ".").dropLast().joined(separator: ".") }
    var isContainer: Bool { kind == .section || kind == .sections }
}

enum ConfigSchema {
    /// Every key, in the order the example file and the reference show them.
    static let keys: [ConfigKey] = server + kubernetesAndClients + directory

    private static let byPath: [String: ConfigKey] = Dictionary(keys.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })

    /// `clients[3].id` → `clients[].id`.
    static func normalize(_ path: String) -> String {
        var out = ""
        var skipping = false
        for c in path {
            if c == "[" { skipping = true; out += "[]"; continue }
            if c == "]" { skipping = false; continue }
            if !skipping { out.append(c) }
        }
        return out
    }

    /// The declared key at `path` (list indices allowed), if any.
    static func key(_ path: String) -> ConfigKey? { byPath[normalize(path)] }

    /// The keys directly under `path` ("" for the top, `clients[]` for a client), in order.
    static func children(of path: String) -> [ConfigKey] {
        let p = normalize(path)
        return keys.filter { $0.parent == p }
    }

    /// Keys that hold values (not sections).
    static var leaves: [ConfigKey] { keys.filter { !$0.isContainer } }

    /// "unknown key" with a hint: a near spelling among the keys allowed here, else the place
    /// where a key of that name belongs.
    static func unknownKeyMessage(_ key: String, under path: String) -> String {
        let siblings = children(of: path).map(\.name)
        let allowed = min(3, max(1, key.count / 2))
        if let near = siblings.min(by: { distance($0, key) < distance($1, key) }), distance(near, key) <= allowed {
            return "unknown key (did you mean '\(near)'?)"
        }
        let elsewhere = keys.filter { $0.name == key }.map(\.path)
        if !elsewhere.isEmpty {
            return "unknown key here (did you mean " + elsewhere.map { "'\($0)'" }.joined(separator: " or ") + "?)"
        }
        return "unknown key"
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
