import Foundation
import IdP
import Yams

/// Reads YAML nodes against `ConfigSchema`: only declared keys (an unknown one gets a hint), values
/// of the declared type within the declared range or choices, and every problem with its location
/// (file:line:column and the key path). The main configuration and its ldap: and kerberos:
/// sections are read with one of these.
struct ConfigReader {
    let file: String?
    let env: [String: String]
    private(set) var problems: [ConfigProblem] = []
    /// Declared paths the readers asked for (`clients[].id` form); a test checks every key is read.
    private(set) var consulted: Set<String> = []

    init(file: String?, env: [String: String]) { self.file = file; self.env = env }

    /// "file:line:column: key.path" (or "file: key.path" without a position).
    func location(_ node: Node?, _ path: String) -> String {
        let f = file ?? "config"
        if let m = node?.mark { return "\(f):\(m.line):\(m.column): \(path)" }
        return "\(f): \(path)"
    }

    mutating func problem(_ node: Node?, _ path: String, _ message: String) {
        problems.append(.init(location: location(node, path), message: message))
    }

    mutating func append(_ found: [ConfigProblem]) { problems += found }

    /// The declared key; reading an undeclared one is a programming error the schema tests catch.
    private mutating func declared(_ path: String) -> ConfigKey {
        guard let key = ConfigSchema.key(path) else { preconditionFailure("configuration key '\(path)' is not declared in ConfigSchema") }
        consulted.insert(key.path)
        return key
    }

    // MARK: - Structure

    /// The mapping at `node` restricted to the keys declared under `path`, with a problem (and a
    /// hint) for each other key; `key:` with nothing after it means "use the default".
    mutating func section(_ node: Node?, _ path: String) -> [String: Node]? {
        if !path.isEmpty, !path.hasSuffix("]") { _ = declared(path) }
        guard let node else { return nil }
        if Self.isNull(node) { return [:] }
        guard let m = node.mapping else { problem(node, path, "expected a mapping"); return nil }
        let known = Set(ConfigSchema.children(of: path).map(\.name))
        var out: [String: Node] = [:]
        for (k, v) in m {
            guard let key = k.string else { problem(k, path, "keys must be strings"); continue }
            let full = path.isEmpty ? key : path + "." + key
            guard known.contains(key) else { problem(k, full, ConfigSchema.unknownKeyMessage(key, under: path)); continue }
            if Self.isNull(v) { continue }
            out[key] = v
        }
        return out
    }

    /// The items of a list of mappings, each restricted to the keys declared under `path[]`.
    mutating func items(_ node: Node?, _ path: String) -> [(path: String, node: Node, keys: [String: Node])] {
        _ = declared(path)
        guard let node else { return [] }
        guard let seq = node.sequence else { problem(node, path, "expected a list"); return [] }
        var out: [(String, Node, [String: Node])] = []
        for (i, item) in seq.enumerated() {
            let p = "\(path)[\(i)]"
            if let m = section(item, p) { out.append((p, item, m)) }
        }
        return out
    }

    // MARK: - Values

    mutating func string(_ node: Node?, _ path: String) -> String? {
        _ = declared(path)
        guard let node else { return nil }
        guard let s = node.scalar?.string else { problem(node, path, "expected a string"); return nil }
        return s
    }

    /// A list of strings; keys that allow it take one string alone too (`urls: ldap://a`).
    mutating func strings(_ node: Node?, _ path: String, orOne: Bool = false) -> [String]? {
        _ = declared(path)
        guard let node else { return nil }
        if orOne, let s = node.scalar?.string { return [s] }
        guard let seq = node.sequence else { problem(node, path, "expected a list"); return nil }
        var out: [String] = []
        for (i, item) in seq.enumerated() {
            if let s = item.scalar?.string { out.append(s) } else { problem(item, "\(path)[\(i)]", "expected a string") }
        }
        return out
    }

    mutating func bool(_ node: Node?, _ path: String) -> Bool? {
        _ = declared(path)
        guard let node else { return nil }
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: problem(node, path, "expected true or false"); return nil
        }
    }

    mutating func int(_ node: Node?, _ path: String) -> Int? {
        guard case .int(let range) = declared(path).kind else { preconditionFailure("\(path) is not declared as an integer") }
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = Int(s) else { problem(node, path, "expected an integer"); return nil }
        guard range.contains(v) else { problem(node, path, "must be between \(range.lowerBound) and \(range.upperBound)"); return nil }
        return v
    }

    mutating func duration(_ node: Node?, _ path: String) -> TimeInterval? {
        guard case .duration(let range) = declared(path).kind else { preconditionFailure("\(path) is not declared as a duration") }
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = Self.seconds(s) else {
            problem(node, path, "expected a duration such as 500ms, 60s, 15m, 12h or 30d")
            return nil
        }
        guard range.contains(v) else {
            problem(node, path, "must be between \(Self.format(range.lowerBound)) and \(Self.format(range.upperBound))")
            return nil
        }
        return v
    }

    /// One of the declared choices, in the declared spelling (matched regardless of case).
    mutating func choice(_ node: Node?, _ path: String) -> String? {
        guard case .choice(let choices) = declared(path).kind else { preconditionFailure("\(path) is not declared as a choice") }
        guard let node else { return nil }
        guard let s = node.scalar?.string else { problem(node, path, "expected a string"); return nil }
        if let v = choices.first(where: { $0.lowercased() == s.lowercased() }) { return v }
        problem(node, path, "must be " + Self.alternatives(choices))
        return nil
    }

    /// A choice read into an enum whose raw values are the declared choices.
    mutating func choice<E: RawRepresentable>(_ node: Node?, _ path: String, as _: E.Type) -> E? where E.RawValue == String {
        choice(node, path).flatMap(E.init(rawValue:))
    }

    // MARK: - Helpers

    /// "a or b", "one of a, b, c".
    static func alternatives(_ choices: [String]) -> String {
        if choices.count == 2 { return "\(choices[0]) or \(choices[1])" }
        return choices.count == 1 ? choices[0] : "one of " + choices.joined(separator: ", ")
    }

    /// Durations as elsewhere (`90s`, `15m`, `12h`, `30d`, a bare number of seconds) and milliseconds (`500ms`).
    static func seconds(_ s: String) -> TimeInterval? {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("ms"), let v = Double(t.dropLast(2)), v >= 0 { return v / 1000 }
        return DurationParser.seconds(t)
    }

    static func format(_ seconds: TimeInterval) -> String {
        if seconds > 0 && seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        return DurationParser.format(seconds)
    }

    static func isNull(_ node: Node) -> Bool {
        guard let s = node.scalar else { return false }
        return s.tag.rawValue == "tag:yaml.org,2002:null" || (s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string))
    }

    /// The node at a dotted path under `root` (which is the first component), if the file has it.
    static func node(at path: String, in root: Node) -> Node? {
        var node: Node? = root
        for part in path.split(separator: ".").dropFirst() {
            let key = String(part.split(separator: "[").first ?? part)
            node = node?.mapping?[key]
        }
        return node
    }
}
