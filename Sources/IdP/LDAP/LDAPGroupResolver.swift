import Foundation

/// The groups of a user entry: found by search (`(member={dn})`) or read from a memberOf-style
/// attribute, optionally following groups of groups up to `nestedDepth` levels.
struct LDAPGroupResolver {
    let config: LDAPConfiguration.Groups
    let session: LDAPServerPool.Session

    func groups(of user: LDAPEntry, username: String) throws -> [String] {
        var names: [String: String] = [:]    // group DN (lower-cased) → name
        switch config.mode {
        case .none:
            return []
        case .search:
            var frontier = [user.dn]
            var first = true
            for _ in 0...config.nestedDepth where !frontier.isEmpty {
                var next: [String] = []
                // One search per level: (|(member=a)(member=b)…).
                let parts = frontier.map { LDAPFilter.substitute(config.filter, ["dn": $0, "username": username]) }
                let filter = parts.count == 1 ? parts[0] : "(|" + parts.joined() + ")"
                for g in try session.search(base: config.baseDN, scope: config.scope, filter: filter, attributes: [config.nameAttribute]) {
                    let key = g.dn.lowercased()
                    guard names[key] == nil, let name = g.first(config.nameAttribute) ?? LDAPDN.firstRDN(g.dn)?.value else { continue }
                    names[key] = name
                    next.append(g.dn)
                }
                // Without {dn}, the filter cannot follow groups of groups.
                if first && !config.filter.contains("{dn}") { break }
                first = false
                frontier = next
            }
        case .attribute:
            var frontier = user.strings(config.memberOfAttribute)
            var level = 0
            while !frontier.isEmpty {
                var next: [String] = []
                for dn in frontier where names[dn.lowercased()] == nil {
                    let needEntry = level < config.nestedDepth
                    let rdn = LDAPDN.firstRDN(dn)
                    var name = rdn.flatMap { $0.type.caseInsensitiveCompare(config.nameAttribute) == .orderedSame ? $0.value : nil }
                    if needEntry || name == nil {
                        let found = try session.search(base: dn, scope: .base, filter: "(objectClass=*)",
                                                       attributes: [config.nameAttribute, config.memberOfAttribute])
                        guard let g = found.first else { continue }     // a dangling reference
                        name = name ?? g.first(config.nameAttribute)
                        if needEntry { next += g.strings(config.memberOfAttribute) }
                    }
                    if let name { names[dn.lowercased()] = name }
                }
                level += 1
                frontier = level <= config.nestedDepth ? next : []
            }
        }
        return Set(names.values).map { config.prefix + $0 }.sorted()
    }
}
