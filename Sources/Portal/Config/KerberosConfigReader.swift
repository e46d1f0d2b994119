import Foundation
import IdP
import Yams

/// Reads the `kerberos:` section (SPNEGO logins) into a `KerberosConfiguration`, collecting every
/// problem with its location, the way `ConfigLoader` does for the rest.
struct KerberosConfigReader {
    let file: String?
    private(set) var problems: [ConfigProblem] = []

    init(file: String?) { self.file = file }

    mutating func read(_ node: Node) -> KerberosConfiguration? {
        guard let m = mapping(node, "kerberos", known: ["keytab", "service_principal", "realms", "principal_mapping", "threads"]) else { return nil }
        var c = KerberosConfiguration()
        if let v = string(m["keytab"], "kerberos.keytab") { c.keytab = v }
        if let v = string(m["service_principal"], "kerberos.service_principal") { c.servicePrincipal = v }
        if let n = m["realms"] {
            if let s = n.scalar?.string { c.realms = [s] } else if let seq = n.sequence {
                c.realms = seq.enumerated().compactMap { string($0.element, "kerberos.realms[\($0.offset)]") }
            } else { problem(n, "kerberos.realms", "expected a list") }
        }
        if let n = m["principal_mapping"] {
            if let seq = n.sequence {
                for (i, item) in seq.enumerated() {
                    let path = "kerberos.principal_mapping[\(i)]"
                    guard let r = mapping(item, path, known: ["match", "replace"]) else { continue }
                    guard let match = string(r["match"], path + ".match"), let replace = string(r["replace"], path + ".replace") else {
                        problem(item, path, "needs match (a regular expression over name@REALM) and replace (the username, with $1 for groups)")
                        continue
                    }
                    if (try? NSRegularExpression(pattern: match)) == nil {
                        problem(r["match"], path + ".match", "'\(match)' is not a valid regular expression")
                    }
                    c.mappings.append(.init(match: match, replace: replace))
                }
            } else { problem(n, "kerberos.principal_mapping", "expected a list") }
        }
        if let n = m["threads"] {
            if let s = n.scalar?.string, let v = Int(s), (1...64).contains(v) { c.threads = v } else { problem(n, "kerberos.threads", "must be between 1 and 64") }
        }
        if c.keytab.isEmpty { problem(node, "kerberos.keytab", "is required: the keytab holding the key of HTTP/<portal host>") }
        if c.realms.isEmpty { problem(m["realms"] ?? node, "kerberos.realms", "list at least one realm whose users may log in, e.g. [EXAMPLE.ORG]") }
        return c
    }

    /// After the environment is applied (the issuer may come from PORTAL_ISSUER): the default service
    /// principal, the remaining checks, and whether the keytab holds the expected principal.
    static func finish(_ config: inout PortalConfig, file: String?) -> [ConfigProblem] {
        guard var k = config.kerberos else { return [] }
        let f = file ?? "config"
        if k.servicePrincipal.isEmpty, let sp = KerberosConfiguration.defaultServicePrincipal(issuer: config.issuer) { k.servicePrincipal = sp }
        config.kerberos = k
        var out: [ConfigProblem] = []
        for (key, message) in k.problems() where key != "kerberos.keytab" && key != "kerberos.realms" && !key.hasSuffix(".match") {
            out.append(.init(location: "\(f): \(key)", message: message))
        }
        if !k.keytab.isEmpty, let why = GSSAcceptor.keytabProblem(keytab: k.keytab, servicePrincipal: k.servicePrincipal) {
            out.append(.init(location: "\(f): kerberos.keytab", message: why))
        }
        return out
    }

    // MARK: - Helpers (the same conventions as ConfigLoader)

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
}
