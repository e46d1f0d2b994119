import Foundation
import IdP
import Yams

extension ConfigReader {
    /// The `kerberos:` section (SPNEGO logins) as a `KerberosConfiguration`.
    mutating func readKerberos(_ node: Node) -> KerberosConfiguration? {
        guard let m = section(node, "kerberos") else { return nil }
        var c = KerberosConfiguration()
        if let v = string(m["keytab"], "kerberos.keytab") { c.keytab = v }
        if let v = string(m["service_principal"], "kerberos.service_principal") { c.servicePrincipal = v }
        if let v = strings(m["realms"], "kerberos.realms", orOne: true) { c.realms = v }
        for (path, item, r) in items(m["principal_mapping"], "kerberos.principal_mapping") {
            let match = string(r["match"], path + ".match"), replace = string(r["replace"], path + ".replace")
            guard let match, let replace else {
                problem(item, path, "needs match (a regular expression over name@REALM) and replace (the username, with $1 for groups)")
                continue
            }
            if (try? NSRegularExpression(pattern: match)) == nil {
                problem(r["match"], path + ".match", "'\(match)' is not a valid regular expression")
            }
            c.mappings.append(.init(match: match, replace: replace))
        }
        if let v = int(m["threads"], "kerberos.threads") { c.threads = v }
        if c.keytab.isEmpty { problem(node, "kerberos.keytab", "is required: the keytab holding the key of HTTP/<portal host>") }
        if c.realms.isEmpty { problem(m["realms"] ?? node, "kerberos.realms", "list at least one realm whose users may log in, e.g. [EXAMPLE.ORG]") }
        return c
    }

    /// After the environment is applied (the issuer may come from PORTAL_ISSUER): the default service
    /// principal, the remaining checks, and whether the keytab holds the expected principal.
    static func finishKerberos(_ config: inout PortalConfig, file: String?) -> [ConfigProblem] {
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
}
