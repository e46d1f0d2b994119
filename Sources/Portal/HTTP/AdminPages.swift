import Foundation
import IdP
import Templates

/// The admin sections as pages: names where people expect names (not ids), dates in UTC words,
/// an empty state that says what the list is for, and the button that fills it.
struct AdminPages {
    let runtime: Runtime

    typealias F = AdminView.Field
    typealias A = AdminView.Action
    typealias H = AdminView.Hidden
    typealias C = AdminView.Cell

    /// "2026-12-01 04:21 UTC". From the broken-down UTC time, not a DateFormatter: pages format
    /// one or more dates per row, and building a formatter each time was most of the audit page's time.
    static func date(_ d: Date?) -> String {
        guard let d else { return "never" }
        var seconds = time_t(d.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        return String(format: "%04d-%02d-%02d %02d:%02d UTC", Int(t.tm_year) + 1900, Int(t.tm_mon) + 1, Int(t.tm_mday), Int(t.tm_hour), Int(t.tm_min))
    }

    /// "in 3 days", "in 5 hours", "expired 2 days ago".
    static func relative(_ d: Date, now: Date) -> String {
        let s = d.timeIntervalSince(now)
        let words = DurationParser.words(Self.round(abs(s)))
        return s > 0 ? "in \(words)" : "expired \(words) ago"
    }

    /// "just now", "5 minutes ago", "3 days ago".
    static func ago(_ d: Date, now: Date) -> String {
        let s = now.timeIntervalSince(d)
        return s < 60 ? "just now" : "\(DurationParser.words(Self.round(s))) ago"
    }

    static func round(_ s: TimeInterval) -> TimeInterval {
        if s >= 2 * 86400 { return (s / 86400).rounded(.down) * 86400 }
        if s >= 7200 { return (s / 3600).rounded(.down) * 3600 }
        return max(60, (s / 60).rounded(.down) * 60)
    }

    func view(_ path: String, _ q: FormParameters, admin: Identity, chrome: Chrome) async throws -> AdminView {
        let csrf = chrome.csrf
        let d = Self.date
        let now = runtime.clock.now()
        switch path {
        case "/admin/users":
            return try await PersonPage(runtime: runtime).list(q, chrome: chrome)
        case "/admin/robots":
            // Hundreds, not thousands: filtered and paged here.
            let query = String((q["q"] ?? "").prefix(100)).trimmingCharacters(in: .whitespaces).lowercased()
            let page = min(max(1, Int(q["page"] ?? "") ?? 1), 1_000_000), size = PersonPage.pageSize
            let matching = try await runtime.storage.listRobots().filter { r in
                query.isEmpty || ([r.username, r.team, r.description] + r.groups).contains { $0.lowercased().contains(query) }
            }
            let robots = Array(matching.dropFirst((page - 1) * size).prefix(size))
            func link(_ p: Int) -> String { "/admin/robots?" + FormParameters.encode((query.isEmpty ? [] : [("q", query)]) + [("page", String(p))]) }
            var view = AdminView(chrome: chrome, current: path, heading: "Robots",
                             intro: "Accounts for CI jobs and controllers, owned by a team. Kubernetes sees them as robot:<name>. Secrets are never listed.",
                             forms: [.init(title: "Add a robot", action: "/admin/robots", submit: "Add robot", csrf: csrf, fields: [
                                 F("name", "Name (a-z, 0-9, -)", required: true), F("team", "Owning team (group)", required: true),
                                 F("groups", "Groups (comma-separated)"), F("description", "Description"),
                             ])],
                             columns: ["Robot", "Team", "Groups", "Status"],
                             rows: robots.map { r in
                                 let who = [H("id", r.id)]
                                 return AdminView.Row(cells: [C(r.username, sub: r.description.isEmpty ? nil : r.description), C(r.team),
                                                              C(r.groups.isEmpty ? "—" : r.groups.joined(separator: ", ")), C(r.disabled ? "disabled" : "active", kind: "nowrap")],
                                                      actions: [
                                                          A("New credential", action: "", csrf: csrf, object: r.username, hidden: [],
                                                            link: "/admin/robots/credential?id=" + FormParameters.escape(r.id)),
                                                          r.disabled ? A("Enable", action: "/admin/robots/enable", csrf: csrf, object: r.username, hidden: who)
                                                              : A("Disable", action: "/admin/robots/disable", csrf: csrf, object: r.username, hidden: who, danger: true),
                                                          A("Delete", action: "/admin/robots/delete", csrf: csrf, object: r.username, hidden: who, danger: true),
                                                      ])
                             },
                             empty: query.isEmpty ? "No robots yet. A robot is an account for a CI job or a controller, owned by a team; its credentials work with stock kubectl through the webhook."
                                 : "No robot matches “\(query)”.",
                             emptyHref: query.isEmpty ? "#add" : "/admin/robots", emptyLink: query.isEmpty ? "Add a robot" : "Show every robot",
                             nextPage: page * size < matching.count ? link(page + 1) : nil)
            view.filter = .init(action: path, fields: [F("q", "Search", type: "search", value: query, placeholder: "name, team or group")], active: !query.isEmpty)
            view.nextLabel = "Next →"
            view.previousPage = page > 1 ? link(page - 1) : nil
            if !robots.isEmpty { view.pageInfo = "\((page - 1) * size + 1)–\((page - 1) * size + robots.count) of \(matching.count)" }
            return view
        case "/admin/credentials":
            let owner = q["owner"].flatMap { $0.isEmpty ? nil : $0 }
            var ownerID = owner
            if let o = owner {
                if let u = try await runtime.storage.user(username: Usernames.canonical(o)) { ownerID = u.id }
                else if let r = try await runtime.storage.robot(name: o.replacingOccurrences(of: Robot.usernamePrefix, with: "")) { ownerID = r.id }
            }
            let creds = try await runtime.storage.listCredentials(ownerID: ownerID, includeRevoked: true)
            var names = try await Names.load(runtime, ids: creds.map(\.ownerID))
            // A person's credential is made by that person: its creator names a directory owner too.
            for c in creds where c.ownerKind == .user && names.byID[c.ownerID] == nil { names.byID[c.ownerID] = c.createdBy }
            return AdminView(chrome: chrome, current: path, heading: "All credentials",
                             intro: "Every application credential, people's and robots'. Revoking one stops it \(AdminRoutes.webhookCache).",
                             filter: .init(action: path, fields: [F("owner", "Owner", value: owner ?? "", placeholder: "username or robot name")], active: owner != nil),
                             columns: ["Credential", "Owner", "Created", "Last used", "Expires", "State"],
                             rows: creds.map { c in
                                 let state = c.revokedAt != nil ? "revoked" : (c.expiresAt <= now ? "expired" : "active")
                                 return AdminView.Row(cells: [C(c.name, sub: c.id), C(names.name(c.ownerID), link: c.ownerKind == .user ? "/admin/users/" + FormParameters.escape(names.name(c.ownerID)) : nil), C.date(d(c.createdAt)), C.date(d(c.lastUsedAt)),
                                                              C(d(c.expiresAt), kind: "nowrap", sub: state == "active" ? Self.relative(c.expiresAt, now: now) : nil),
                                                              C(state, kind: "nowrap")],
                                                      actions: state == "active" ? [A("Revoke", action: "/admin/credentials/revoke", csrf: csrf, object: c.name,
                                                                                      hidden: [H("id", c.id)], danger: true)] : [])
                             },
                             empty: owner == nil ? "No application credentials yet. People create their own under Credentials; robots get theirs from an administrator under Robots."
                                 : "No credentials belong to \(owner ?? "").",
                             emptyHref: owner == nil ? "/admin/robots" : "/admin/credentials", emptyLink: owner == nil ? "Go to robots" : "Show all credentials")
        case "/admin/sessions":
            let families = try await runtime.storage.activeFamilies(userID: nil, now: now)
            var names = try await Names.load(runtime, ids: families.prefix(500).map(\.grant.userID))
            await names.addDirectoryNames(families.prefix(500).map(\.grant.userID), runtime)
            return AdminView(chrome: chrome, current: path, heading: "Active sessions",
                             intro: "Each row is one sign-in on one device (kubectl, an application): a chain of rotating refresh tokens. Ending it stops its refresh token at once.",
                             columns: ["User", "Device", "Client", "Started", "Last refresh", "Ends"],
                             rows: families.prefix(500).map { f in
                                 AdminView.Row(cells: [C(names.name(f.grant.userID), sub: "by \(f.grant.authMethod)",
                                                         link: "/admin/users/" + FormParameters.escape(names.name(f.grant.userID))),
                                                       C(DeviceName.describe(userAgent: f.userAgent), sub: f.address.isEmpty ? nil : f.address),
                                                       C(f.grant.clientID), C.date(d(f.createdAt)), C.date(d(f.lastUsedAt)), C.date(d(f.expiresAt))],
                                               actions: [A("End", action: "/admin/sessions/revoke", csrf: csrf, object: "\(names.name(f.grant.userID))'s sign-in",
                                                           hidden: [H("id", f.id)], danger: true)])
                             },
                             empty: "Nobody is signed in with kubectl or an application right now. Each sign-in appears here, one row per device.")
        case "/admin/keys":
            let status = await runtime.keys.status()
            return AdminView(chrome: chrome, current: path, heading: "Signing keys",
                             intro: "Routine rotation: the published next key signs once every verifier can have it. Emergency rotation, for a suspected compromise: a new key signs at once and every other key leaves JWKS. You choose on the next page.",
                             forms: [.init(title: "Rotate", action: "/admin/keys/rotate", submit: "Rotate signing key…", csrf: csrf, fields: [], anchor: "rotate")],
                             columns: ["Key id", "Algorithm", "State", "Signs from", "Leaves JWKS", "At rest"],
                             rows: status.map { s in
                                 AdminView.Row(cells: [C.id(s.kid), C(s.algorithm.rawValue, kind: "nowrap"), C(s.state, kind: "nowrap"), C.date(d(s.activatesAt)),
                                                       C.date(s.expiresAt.map { d($0) } ?? "—"), C(s.encrypted ? "encrypted" : "NOT encrypted", kind: "nowrap")])
                             },
                             empty: "No signing keys yet: the portal makes one at start.")
        case "/admin/throttles":
            return AdminView(chrome: chrome, current: path, heading: "Sign-in throttles",
                             intro: "Failed sign-ins and client authentications, counted per account and address. An address an account has signed in from before is never delayed by failures elsewhere. Clearing a row lets the next attempt through at once.",
                             columns: ["Counts", "Account", "Address", "Failures", "Delayed until"],
                             rows: try await runtime.login.throttle.list(now: now).map { s in
                                 let (kind, account, address) = ThrottleKey.describe(s.key)
                                 return AdminView.Row(cells: [C(kind), C(account), C(address), C("\(s.failures)", kind: "nowrap"),
                                                              C.date(s.lockedUntil.map { $0 > now ? d($0) : "—" } ?? "—")],
                                                      actions: [A("Clear", action: "/admin/throttles/clear", csrf: csrf, object: account, hidden: [H("key", s.key)])])
                             },
                             empty: "No sign-in is being delayed. Failed sign-ins show up here, counted per account and address.")
        case "/admin/clients":
            let clients = try await runtime.provider.clients.all()
            return AdminView(chrome: chrome, current: path, heading: "OAuth clients",
                             intro: "Applications that sign people in here. Declared in the configuration file or added with `portal client add`.",
                             columns: ["Client", "Type", "Redirect URIs", "Source"],
                             rows: clients.map { c in
                                 AdminView.Row(cells: [C(c.name, sub: c.id), C(c.isPublic ? "public (PKCE)" : "confidential", kind: "nowrap"),
                                                       C(c.redirectURIs.joined(separator: " ")),
                                                       C(runtime.provider.clients.isConfigured(c.id) ? "configuration" : "database", kind: "nowrap")])
                             },
                             empty: "No OAuth clients. Declare them under clients: in the configuration file, or add one with `portal client add`.")
        default:
            return try await AuditPage(runtime: runtime).view(q, chrome: chrome)
        }
    }
}

/// Names for the ids stored in records: users, robots, credentials.
struct Names {
    var byID: [String: String] = [:]

    /// Names for just these ids (one indexed lookup each: a page shows at most a few hundred,
    /// while loading every user costs the same at 5,000 people as at 5).
    static func load(_ runtime: Runtime, ids: some Sequence<String>, credentials: Bool = false) async throws -> Names {
        var n = Names()
        for id in Set(ids) where !id.isEmpty && id.count <= 64 {
            if let u = try await runtime.storage.user(id: id) { n.byID[id] = u.username }
            else if let r = try await runtime.storage.robot(id: id) { n.byID[id] = r.username }
            else if credentials, let c = try await runtime.storage.credential(id: id) { n.byID[id] = "credential “\(c.name)” (\(c.id))" }
        }
        return n
    }

    /// The name behind an id, or the id itself (a client, a key id, a directory person it could not find).
    func name(_ id: String) -> String { byID[id] ?? id }

    /// Directory people are not local users: ask the directory for the names of up to 100 unknown
    /// subjects, and stop asking at its first failure (a page must not wait on a directory that is down).
    mutating func addDirectoryNames(_ ids: some Sequence<String>, _ runtime: Runtime) async {
        guard let directory = runtime.provider.directory else { return }
        var unknown = Set<String>()
        for id in ids where byID[id] == nil && !id.isEmpty { unknown.insert(id); if unknown.count == 100 { break } }
        for id in unknown {
            do { if let identity = try await directory.revalidate(subject: id) { byID[id] = identity.username } } catch { return }
        }
    }
}
