import Foundation
import IdP
import Yams

/// Reads the `ldap:` section into an `LDAPConfiguration`, collecting every problem with its
/// location (file:line:column and key path), the way `ConfigLoader` does for the rest.
struct LDAPConfigReader {
    let file: String?
    let env: [String: String]
    private(set) var problems: [ConfigProblem] = []

    init(file: String?, env: [String: String]) {
        self.file = file; self.env = env
    }

    /// nil when the section is absent or too broken to use (problems say why).
    mutating func read(_ node: Node, idTokenLifetime: TimeInterval) -> LDAPConfiguration? {
        guard let m = mapping(node, "ldap", known: ["urls", "start_tls", "ca_file", "insecure_skip_verify", "bind_dn", "bind_password_file",
                                                     "bind_password_env", "bind_mechanism", "precedence", "username_case", "user_search", "attributes",
                                                     "groups", "account_state", "timeouts", "retry_after", "cache_lifetime",
                                                     "threads", "pool_size"]) else { return nil }
        var c = LDAPConfiguration()
        if let n = m["urls"] {
            if let s = n.scalar?.string { c.urls = [s] } else if let v = strings(n, "ldap.urls") { c.urls = v }
        }
        if let v = bool(m["start_tls"], "ldap.start_tls") { c.startTLS = v }
        if let v = string(m["ca_file"], "ldap.ca_file") {
            c.caFile = v
            if !FileManager.default.isReadableFile(atPath: v) { problem(m["ca_file"], "ldap.ca_file", "cannot read '\(v)'") }
        }
        if let v = bool(m["insecure_skip_verify"], "ldap.insecure_skip_verify") { c.insecureSkipVerify = v }
        if let v = string(m["bind_dn"], "ldap.bind_dn") { c.bindDN = v }
        let pwFile = string(m["bind_password_file"], "ldap.bind_password_file")
        let pwEnv = string(m["bind_password_env"], "ldap.bind_password_env")
        if pwFile != nil && pwEnv != nil {
            problem(m["bind_password_env"], "ldap.bind_password_env", "give bind_password_file or bind_password_env, not both")
        } else if let f = pwFile {
            // Secrets end at the first line break; the value itself is never echoed.
            if let text = try? String(contentsOfFile: f, encoding: .utf8) {
                c.bindPassword = text.trimmingCharacters(in: .newlines)
                if c.bindPassword!.isEmpty { problem(m["bind_password_file"], "ldap.bind_password_file", "'\(f)' is empty") }
            } else { problem(m["bind_password_file"], "ldap.bind_password_file", "cannot read '\(f)'") }
        } else if let e = pwEnv {
            c.bindPassword = env[e]
            if (env[e] ?? "").isEmpty { problem(m["bind_password_env"], "ldap.bind_password_env", "environment variable \(e) is empty or unset") }
        }
        if c.bindDN != nil && pwFile == nil && pwEnv == nil {
            problem(m["bind_dn"], "ldap.bind_dn", "needs bind_password_file or bind_password_env (leave bind_dn out for anonymous search)")
        }
        if let v = choice(m["bind_mechanism"], "ldap.bind_mechanism", LDAPConfiguration.BindMechanism.self) {
            c.bindMechanism = v
            if v == .gssapi && (c.bindDN != nil || pwFile != nil || pwEnv != nil) {
                problem(m["bind_mechanism"], "ldap.bind_mechanism", "gssapi binds with the Kerberos ticket cache (KRB5CCNAME): remove bind_dn and the bind password")
            }
        }
        if let v = choice(m["precedence"], "ldap.precedence", LDAPConfiguration.Precedence.self) { c.precedence = v }
        if let v = choice(m["username_case"], "ldap.username_case", LDAPConfiguration.UsernameCase.self) { c.usernameCase = v }

        if let n = m["user_search"], let s = mapping(n, "ldap.user_search", known: ["base_dn", "scope", "filter", "username_attribute"]) {
            if let v = string(s["base_dn"], "ldap.user_search.base_dn") { c.userSearch.baseDN = v }
            if let v = choice(s["scope"], "ldap.user_search.scope", LDAPConfiguration.Scope.self) { c.userSearch.scope = v }
            if let v = string(s["filter"], "ldap.user_search.filter") { c.userSearch.filter = v }
            if let v = string(s["username_attribute"], "ldap.user_search.username_attribute") {
                c.userSearch.usernameAttribute = v
                if m["attributes"]?.mapping?["username"] == nil { c.attributes.username = v }
            }
        }
        if let n = m["attributes"], let a = mapping(n, "ldap.attributes", known: ["subject", "username", "display_name", "email"]) {
            if let v = string(a["subject"], "ldap.attributes.subject") { c.attributes.subject = v }
            if let v = string(a["username"], "ldap.attributes.username") { c.attributes.username = v }
            if let v = string(a["display_name"], "ldap.attributes.display_name") { c.attributes.displayName = v }
            if let v = string(a["email"], "ldap.attributes.email") { c.attributes.email = v }
        }
        if let n = m["groups"], let g = mapping(n, "ldap.groups", known: ["mode", "base_dn", "scope", "filter", "member_of_attribute",
                                                                          "name_attribute", "nested_depth", "prefix"]) {
            if let v = choice(g["mode"], "ldap.groups.mode", LDAPConfiguration.GroupMode.self) { c.groups.mode = v }
            if let v = string(g["base_dn"], "ldap.groups.base_dn") { c.groups.baseDN = v }
            if let v = choice(g["scope"], "ldap.groups.scope", LDAPConfiguration.Scope.self) { c.groups.scope = v }
            if let v = string(g["filter"], "ldap.groups.filter") { c.groups.filter = v }
            if let v = string(g["member_of_attribute"], "ldap.groups.member_of_attribute") { c.groups.memberOfAttribute = v }
            if let v = string(g["name_attribute"], "ldap.groups.name_attribute") { c.groups.nameAttribute = v }
            if let v = int(g["nested_depth"], "ldap.groups.nested_depth", min: 0, max: 10) { c.groups.nestedDepth = v }
            if let v = string(g["prefix"], "ldap.groups.prefix") { c.groups.prefix = v }
        }
        if let n = m["account_state"], let s = mapping(n, "ldap.account_state", known: ["disabled_attribute", "disabled_value", "active_filter"]) {
            c.accountState.disabledAttribute = string(s["disabled_attribute"], "ldap.account_state.disabled_attribute")
            c.accountState.disabledValue = string(s["disabled_value"], "ldap.account_state.disabled_value")
            c.accountState.activeFilter = string(s["active_filter"], "ldap.account_state.active_filter")
        }
        if let n = m["timeouts"], let t = mapping(n, "ldap.timeouts", known: ["connect", "operation"]) {
            if let v = duration(t["connect"], "ldap.timeouts.connect", min: 0.1, max: 60) { c.connectTimeout = v }
            if let v = duration(t["operation"], "ldap.timeouts.operation", min: 0.1, max: 120) { c.operationTimeout = v }
        }
        if let v = duration(m["retry_after"], "ldap.retry_after", min: 0, max: 3600) { c.retryAfter = v }
        if let v = duration(m["cache_lifetime"], "ldap.cache_lifetime", min: 0, max: 3600) {
            c.cacheLifetime = v
            if v > idTokenLifetime {
                problem(m["cache_lifetime"], "ldap.cache_lifetime", "must not exceed tokens.id_token_lifetime (\(DurationParser.format(idTokenLifetime))): a disabled account must stop working within one id_token lifetime")
            }
        } else if c.cacheLifetime > idTokenLifetime {
            c.cacheLifetime = idTokenLifetime
        }
        if let v = int(m["threads"], "ldap.threads", min: 1, max: 256) { c.threads = v }
        if let v = int(m["pool_size"], "ldap.pool_size", min: 0, max: 256) { c.poolSize = v }

        for (key, message) in c.problems() {
            // Point at the key when it is in the file, otherwise at the section.
            problem(nodeAt(key, in: node) ?? node, key, message)
        }
        return c
    }

    // MARK: - Helpers (the same conventions as ConfigLoader)

    private func nodeAt(_ path: String, in root: Node) -> Node? {
        var node: Node? = root
        for part in path.split(separator: ".").dropFirst() {
            let key = String(part.split(separator: "[").first ?? part)
            node = node?.mapping?[key]
        }
        return node
    }

    private mutating func problem(_ node: Node?, _ path: String, _ message: String) {
        problems.append(.init(location: ConfigLoader.location(file: file, node, path), message: message))
    }

    private mutating func mapping(_ node: Node, _ path: String, known: [String]) -> [String: Node]? {
        let (keys, found) = ConfigLoader.knownKeys(node, path, known: known)
        for (n, p, m) in found { problem(n, p, m) }
        return keys
    }

    private mutating func string(_ node: Node?, _ path: String) -> String? {
        guard let node else { return nil }
        guard let s = node.scalar?.string else { problem(node, path, "expected a string"); return nil }
        return s
    }

    private mutating func strings(_ node: Node?, _ path: String) -> [String]? {
        guard let node else { return nil }
        guard let seq = node.sequence else { problem(node, path, "expected a list"); return nil }
        return seq.enumerated().compactMap { string($0.element, "\(path)[\($0.offset)]") }
    }

    private mutating func bool(_ node: Node?, _ path: String) -> Bool? {
        guard let node else { return nil }
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: problem(node, path, "expected true or false"); return nil
        }
    }

    private mutating func int(_ node: Node?, _ path: String, min: Int, max: Int) -> Int? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = Int(s) else { problem(node, path, "expected an integer"); return nil }
        guard v >= min && v <= max else { problem(node, path, "must be between \(min) and \(max)"); return nil }
        return v
    }

    private mutating func duration(_ node: Node?, _ path: String, min: TimeInterval, max: TimeInterval) -> TimeInterval? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = Self.seconds(s) else {
            problem(node, path, "expected a duration such as 500ms, 5s or 1m"); return nil
        }
        guard v >= min && v <= max else { problem(node, path, "must be between \(min)s and \(max)s"); return nil }
        return v
    }

    private mutating func choice<E: RawRepresentable & CaseIterable>(_ node: Node?, _ path: String, _: E.Type) -> E? where E.RawValue == String {
        guard let s = string(node, path) else { return nil }
        if let v = E(rawValue: s) { return v }
        problem(node, path, "must be one of " + E.allCases.map(\.rawValue).joined(separator: ", "))
        return nil
    }

    /// Durations with millisecond precision for timeouts (`500ms`), otherwise as elsewhere.
    static func seconds(_ s: String) -> TimeInterval? {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("ms"), let v = Double(t.dropLast(2)), v >= 0 { return v / 1000 }
        return DurationParser.seconds(t)
    }
}
