import Foundation

/// SPNEGO (HTTP Negotiate) logins with Kerberos tickets, read from the `kerberos:` section.
public struct KerberosConfiguration: Sendable, Equatable {
    /// A rule that turns an accepted principal into a username. `match` is a regular expression
    /// tested against the whole principal (`name@REALM`); `replace` is the username, with `$1`…
    /// for the groups. The first rule that matches wins; with none, the realm is stripped.
    public struct MappingRule: Sendable, Equatable {
        public var match: String
        public var replace: String
        public init(match: String, replace: String) { self.match = match; self.replace = replace }
    }

    /// The keytab with the service key (`FILE:` prefix optional). Read on every login, so a
    /// rotated keytab is picked up without a restart.
    public var keytab = ""
    /// The service principal browsers ask a ticket for: `HTTP/<host of the issuer>`, without realm.
    public var servicePrincipal = ""
    /// Realms whose principals may log in (exact, case-sensitive, as Kerberos spells them).
    public var realms: [String] = []
    public var mappings: [MappingRule] = []
    /// Threads for blocking GSSAPI calls.
    public var threads = 4

    public init() {}

    /// `HTTP/host` → the GSSAPI host-based service name `HTTP@host`.
    public var hostBasedService: String {
        guard let slash = servicePrincipal.firstIndex(of: "/") else { return servicePrincipal }
        return servicePrincipal[..<slash] + "@" + servicePrincipal[servicePrincipal.index(after: slash)...]
    }

    /// The conventional service principal for an issuer URL: `HTTP/` + its host, lower case.
    public static func defaultServicePrincipal(issuer: String) -> String? {
        guard let host = URLComponents(string: issuer)?.host, !host.isEmpty else { return nil }
        return "HTTP/" + host.lowercased()
    }

    /// Problems a configuration has on its own (key path → message); the loader adds locations.
    public func problems() -> [(key: String, message: String)] {
        var out: [(String, String)] = []
        if keytab.isEmpty { out.append(("kerberos.keytab", "is required")) }
        if realms.isEmpty { out.append(("kerberos.realms", "list at least one realm whose users may log in, e.g. [EXAMPLE.ORG]")) }
        for (i, r) in realms.enumerated() where r.isEmpty || r.contains("@") || r.contains("/") || r.contains(where: \.isWhitespace) {
            out.append(("kerberos.realms[\(i)]", "'\(r)' is not a realm name"))
        }
        let parts = servicePrincipal.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count != 2 || parts.contains(where: \.isEmpty) || servicePrincipal.contains("@") {
            out.append(("kerberos.service_principal", "'\(servicePrincipal)' must be SERVICE/host without a realm, e.g. HTTP/portal.example.org"))
        }
        for (i, rule) in mappings.enumerated() {
            if (try? NSRegularExpression(pattern: rule.match)) == nil {
                out.append(("kerberos.principal_mapping[\(i)].match", "'\(rule.match)' is not a valid regular expression"))
            }
        }
        return out
    }
}
