import Foundation

/// Everything the LDAP authenticator needs, read from the `ldap:` section of the configuration.
/// Defaults suit OpenLDAP with `inetOrgPerson` users and `groupOfNames` groups.
public struct LDAPConfiguration: Sendable, Equatable {
    public enum Scope: String, Sendable, Equatable, CaseIterable { case base, one, sub }
    public enum UsernameCase: String, Sendable, Equatable, CaseIterable {
        /// The username attribute's value, lower-cased (the default; matches how local names are kept).
        case lower
        /// The username attribute's value exactly as the directory stores it.
        case preserve
    }
    public enum GroupMode: String, Sendable, Equatable, CaseIterable {
        /// Groups found by a search such as `(member={dn})`.
        case search
        /// Group DNs read from an attribute of the user entry, such as `memberOf`.
        case attribute
        /// No groups from the directory.
        case none
    }
    /// Which authenticator answers first when a name exists both locally and in the directory.
    public enum Precedence: String, Sendable, Equatable, CaseIterable {
        case localFirst = "local_first", ldapFirst = "ldap_first"
    }

    public struct UserSearch: Sendable, Equatable {
        public var baseDN = ""
        public var scope = Scope.sub
        /// Extra conditions every user entry must match, e.g. `(objectClass=inetOrgPerson)`.
        public var filter = "(objectClass=*)"
        /// The attribute the typed username is compared with (escaped per RFC 4515).
        public var usernameAttribute = "uid"
        public init() {}
    }

    public struct Attributes: Sendable, Equatable {
        /// Stable id put in `sub`: survives renames. `entryUUID` (OpenLDAP), `objectGUID` (AD), `nsUniqueId` (389).
        public var subject = "entryUUID"
        public var username = "uid"
        public var displayName = "cn"
        public var email = "mail"
        public init() {}
    }

    public struct Groups: Sendable, Equatable {
        public var mode = GroupMode.search
        public var baseDN = ""
        public var scope = Scope.sub
        /// `{dn}` is the member's DN, `{username}` the user's directory username; both escaped.
        public var filter = "(&(objectClass=groupOfNames)(member={dn}))"
        /// For `mode: attribute`: the attribute of the user (and, when nested, of each group) holding group DNs.
        public var memberOfAttribute = "memberOf"
        public var nameAttribute = "cn"
        /// 0: only direct groups. n: also groups of groups, up to n levels up.
        public var nestedDepth = 0
        public var prefix = ""
        public init() {}
    }

    public struct AccountState: Sendable, Equatable {
        /// An attribute whose presence marks the account disabled (e.g. OpenLDAP ppolicy's `pwdAccountLockedTime`).
        public var disabledAttribute: String?
        /// When set, the account is disabled only when `disabledAttribute` has this value (case-insensitive), e.g. `TRUE`.
        public var disabledValue: String?
        /// A filter the user entry must match to be active, e.g. AD's
        /// `(!(userAccountControl:1.2.840.113556.1.4.803:=2))`.
        public var activeFilter: String?
        public init() {}
    }

    public var urls: [String] = []
    public var startTLS = false
    public var caFile: String?
    public var insecureSkipVerify = false
    public var bindDN: String?
    /// The service password, already read from its file or environment variable. Never logged.
    public var bindPassword: String?
    /// `gssapi`: the service bind is SASL/GSSAPI with the Kerberos ticket cache (KRB5CCNAME, e.g.
    /// kept fresh by a kinit sidecar) instead of bind_dn + password. User logins still bind simply.
    public var bindMechanism = BindMechanism.simple
    public enum BindMechanism: String, Sendable, Equatable, CaseIterable { case simple, gssapi }
    public var userSearch = UserSearch()
    public var attributes = Attributes()
    public var groups = Groups()
    public var accountState = AccountState()
    public var usernameCase = UsernameCase.lower
    public var precedence = Precedence.localFirst
    public var connectTimeout: TimeInterval = 3
    public var operationTimeout: TimeInterval = 5
    /// How long a server that failed is skipped before it is tried again.
    public var retryAfter: TimeInterval = 30
    /// Revalidation results are reused for this long (never longer than the id_token lifetime).
    public var cacheLifetime: TimeInterval = 30
    /// Threads for blocking libldap calls, and idle connections kept per server (each for service and user binds).
    public var threads = 8
    public var poolSize = 4

    public init() {}

    /// Problems a configuration has on its own (key path → message); the loader adds locations.
    public func problems() -> [(key: String, message: String)] {
        var out: [(String, String)] = []
        if urls.isEmpty { out.append(("ldap.urls", "at least one ldap:// or ldaps:// URL is required")) }
        for (i, u) in urls.enumerated() {
            if let why = Self.urlProblem(u) { out.append(("ldap.urls[\(i)]", "'\(u)': \(why)")) }
            if startTLS && u.lowercased().hasPrefix("ldaps://") {
                out.append(("ldap.start_tls", "StartTLS cannot be used with the ldaps:// URL '\(u)': use ldap:// URLs or turn start_tls off"))
            }
        }
        if userSearch.baseDN.isEmpty { out.append(("ldap.user_search.base_dn", "is required")) }
        if !LDAPFilter.isWellFormed(userSearch.filter) {
            out.append(("ldap.user_search.filter", "'\(userSearch.filter)' is not a parenthesised LDAP filter"))
        }
        for (k, v) in [("ldap.user_search.username_attribute", userSearch.usernameAttribute), ("ldap.attributes.subject", attributes.subject),
                       ("ldap.attributes.username", attributes.username), ("ldap.attributes.display_name", attributes.displayName),
                       ("ldap.attributes.email", attributes.email), ("ldap.groups.name_attribute", groups.nameAttribute),
                       ("ldap.groups.member_of_attribute", groups.memberOfAttribute)] where !Self.isAttributeName(v) {
            out.append((k, "'\(v)' is not an attribute name"))
        }
        if groups.mode == .search {
            if groups.baseDN.isEmpty { out.append(("ldap.groups.base_dn", "is required when groups.mode is search")) }
            if !LDAPFilter.isWellFormed(groups.filter) {
                out.append(("ldap.groups.filter", "'\(groups.filter)' is not a parenthesised LDAP filter"))
            } else if !groups.filter.contains("{dn}") && !groups.filter.contains("{username}") {
                out.append(("ldap.groups.filter", "must contain {dn} or {username}"))
            }
        }
        if let a = accountState.disabledAttribute, !Self.isAttributeName(a) {
            out.append(("ldap.account_state.disabled_attribute", "'\(a)' is not an attribute name"))
        }
        if accountState.disabledValue != nil && accountState.disabledAttribute == nil {
            out.append(("ldap.account_state.disabled_value", "needs disabled_attribute"))
        }
        if let f = accountState.activeFilter, !LDAPFilter.isWellFormed(f) {
            out.append(("ldap.account_state.active_filter", "'\(f)' is not a parenthesised LDAP filter"))
        }
        if bindDN == nil && bindPassword != nil { out.append(("ldap.bind_dn", "a bind password is given but no bind_dn")) }
        if caFile != nil && insecureSkipVerify {
            out.append(("ldap.insecure_skip_verify", "ca_file is ignored when certificate verification is off"))
        }
        return out
    }

    static func urlProblem(_ url: String) -> String? {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased() else { return "not a URL" }
        guard scheme == "ldap" || scheme == "ldaps" else { return "the scheme must be ldap or ldaps" }
        guard let host = c.host, !host.isEmpty else { return "a host is required" }
        if !(c.path.isEmpty || c.path == "/") || c.query != nil { return "give only scheme, host and port (the search base is configured separately)" }
        return nil
    }

    static func isAttributeName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        // A descriptor (letter, then letters, digits, hyphens) or a numeric OID.
        if CharacterSet.letters.contains(first) {
            return s.unicodeScalars.allSatisfy { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" }
        }
        return s.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || $0 == "." }
    }
}

/// Never prints the service account's password, whatever prints it (string interpolation,
/// `String(reflecting:)`, `dump`, a logger's metadata, service-lifecycle's service list).
extension LDAPConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "LDAPConfiguration(urls: \(urls), bindDN: \(bindDN ?? "none"), bindPassword: \(bindPassword == nil ? "none" : "<redacted>"), "
            + "userSearch: \(userSearch.baseDN), precedence: \(precedence))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["urls": urls, "bindDN": bindDN as Any, "bindPassword": bindPassword == nil ? "none" : "<redacted>"],
               displayStyle: .struct)
    }
}
