import Foundation
import IdP
import Yams

extension ConfigReader {
    /// The `ldap:` section as an `LDAPConfiguration`; nil when it is too broken to use (problems say why).
    mutating func readLDAP(_ node: Node, idTokenLifetime: TimeInterval) -> LDAPConfiguration? {
        guard let m = section(node, "ldap") else { return nil }
        var c = LDAPConfiguration()
        if let v = strings(m["urls"], "ldap.urls", orOne: true) { c.urls = v }
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
        if let v = choice(m["bind_mechanism"], "ldap.bind_mechanism", as: LDAPConfiguration.BindMechanism.self) {
            c.bindMechanism = v
            if v == .gssapi && (c.bindDN != nil || pwFile != nil || pwEnv != nil) {
                problem(m["bind_mechanism"], "ldap.bind_mechanism", "gssapi binds with the Kerberos ticket cache (KRB5CCNAME): remove bind_dn and the bind password")
            }
        }
        if let v = choice(m["precedence"], "ldap.precedence", as: LDAPConfiguration.Precedence.self) { c.precedence = v }
        if let v = choice(m["username_case"], "ldap.username_case", as: LDAPConfiguration.UsernameCase.self) { c.usernameCase = v }

        if let s = section(m["user_search"], "ldap.user_search") {
            if let v = string(s["base_dn"], "ldap.user_search.base_dn") { c.userSearch.baseDN = v }
            if let v = choice(s["scope"], "ldap.user_search.scope", as: LDAPConfiguration.Scope.self) { c.userSearch.scope = v }
            if let v = string(s["filter"], "ldap.user_search.filter") { c.userSearch.filter = v }
            if let v = string(s["username_attribute"], "ldap.user_search.username_attribute") {
                c.userSearch.usernameAttribute = v
                if m["attributes"]?.mapping?["username"] == nil { c.attributes.username = v }
            }
        }
        if let a = section(m["attributes"], "ldap.attributes") {
            if let v = string(a["subject"], "ldap.attributes.subject") { c.attributes.subject = v }
            if let v = string(a["username"], "ldap.attributes.username") { c.attributes.username = v }
            if let v = string(a["display_name"], "ldap.attributes.display_name") { c.attributes.displayName = v }
            if let v = string(a["email"], "ldap.attributes.email") { c.attributes.email = v }
        }
        if let g = section(m["groups"], "ldap.groups") {
            if let v = choice(g["mode"], "ldap.groups.mode", as: LDAPConfiguration.GroupMode.self) { c.groups.mode = v }
            if let v = string(g["base_dn"], "ldap.groups.base_dn") { c.groups.baseDN = v }
            if let v = choice(g["scope"], "ldap.groups.scope", as: LDAPConfiguration.Scope.self) { c.groups.scope = v }
            if let v = string(g["filter"], "ldap.groups.filter") { c.groups.filter = v }
            if let v = string(g["member_of_attribute"], "ldap.groups.member_of_attribute") { c.groups.memberOfAttribute = v }
            if let v = string(g["name_attribute"], "ldap.groups.name_attribute") { c.groups.nameAttribute = v }
            if let v = int(g["nested_depth"], "ldap.groups.nested_depth") { c.groups.nestedDepth = v }
            if let v = string(g["prefix"], "ldap.groups.prefix") { c.groups.prefix = v }
        }
        if let s = section(m["account_state"], "ldap.account_state") {
            c.accountState.disabledAttribute = string(s["disabled_attribute"], "ldap.account_state.disabled_attribute")
            c.accountState.disabledValue = string(s["disabled_value"], "ldap.account_state.disabled_value")
            c.accountState.activeFilter = string(s["active_filter"], "ldap.account_state.active_filter")
        }
        if let t = section(m["timeouts"], "ldap.timeouts") {
            if let v = duration(t["connect"], "ldap.timeouts.connect") { c.connectTimeout = v }
            if let v = duration(t["operation"], "ldap.timeouts.operation") { c.operationTimeout = v }
        }
        if let v = duration(m["retry_after"], "ldap.retry_after") { c.retryAfter = v }
        if let v = duration(m["cache_lifetime"], "ldap.cache_lifetime") {
            c.cacheLifetime = v
            if v > idTokenLifetime {
                problem(m["cache_lifetime"], "ldap.cache_lifetime", "must not exceed tokens.id_token_lifetime (\(DurationParser.format(idTokenLifetime))): a disabled account must stop working within one id_token lifetime")
            }
        } else if c.cacheLifetime > idTokenLifetime {
            c.cacheLifetime = idTokenLifetime
        }
        if let v = int(m["threads"], "ldap.threads") { c.threads = v }
        if let v = int(m["pool_size"], "ldap.pool_size") { c.poolSize = v }

        for (key, message) in c.problems() {
            // Point at the key when it is in the file, otherwise at the section.
            problem(Self.node(at: key, in: node) ?? node, key, message)
        }
        return c
    }
}
