import Foundation
import Hummingbird
import IdP
import Templates

/// /admin/users: search and pages (built for thousands of people), each name a link to the
/// person's own page, where the actions are.
struct PersonPage {
    let runtime: Runtime
    static let pageSize = 50

    typealias C = AdminView.Cell

    func list(_ q: FormParameters, chrome: Chrome) async throws -> AdminView {
        let query = String((q["q"] ?? "").prefix(100))
        // Bounded: a page number is arithmetic on the request's say-so (and a GET any site can link to).
        let page = min(max(1, Int(q["page"] ?? "") ?? 1), 1_000_000)
        let found = try await runtime.storage.searchUsers(query, limit: Self.pageSize, offset: (page - 1) * Self.pageSize)
        func link(_ p: Int) -> String {
            "/admin/users?" + FormParameters.encode((query.isEmpty ? [] : [("q", query)]) + [("page", String(p))])
        }
        let first = (page - 1) * Self.pageSize
        var view = AdminView(chrome: chrome, current: "/admin/users", heading: "Users",
                             intro: "Local accounts. Directory (LDAP) people sign in with their directory password and are managed in the directory. Open a person to see their sign-ins, credentials and audit trail, and to change them.",
                             filter: .init(action: "/admin/users", fields: [AdminView.Field("q", "Search", type: "search", value: query,
                                                                                              placeholder: "name, email or group")],
                                           active: !query.isEmpty),
                             forms: [.init(title: "Add a user", action: "/admin/users", submit: "Add user", csrf: chrome.csrf, fields: [
                                 .init("username", "Username", required: true), .init("password", "Password", type: "password", required: true),
                                 .init("name", "Display name"), .init("email", "Email", type: "email"),
                                 .init("groups", "Groups (comma-separated)"), .init("admin", "Administrator", type: "checkbox"),
                             ])],
                             columns: ["Username", "Email", "Groups", "Status"],
                             rows: found.users.map { u in
                                 let status = [u.isAdmin ? "administrator" : nil, u.disabled ? "disabled" : "active"].compactMap { $0 }.joined(separator: ", ")
                                 return AdminView.Row(cells: [C(u.username, sub: u.displayName == u.username ? nil : u.displayName,
                                                                link: "/admin/users/" + FormParameters.escape(u.username)),
                                                              C(u.email.isEmpty ? "—" : u.email), C(u.groups.isEmpty ? "—" : u.groups.joined(separator: ", ")),
                                                              C(status, kind: "nowrap")])
                             },
                             empty: query.isEmpty ? "No local users yet. Local accounts are for people outside the directory and for break-glass administrators."
                                 : "Nobody matches “\(query)”.",
                             emptyHref: query.isEmpty ? "#add" : "/admin/users", emptyLink: query.isEmpty ? "Add a user" : "Show everyone",
                             nextPage: first + found.users.count < found.total ? link(page + 1) : nil)
        view.nextLabel = "Next →"
        view.previousPage = page > 1 ? link(page - 1) : nil
        if found.total > 0 && !found.users.isEmpty {
            view.pageInfo = "\(first + 1)–\(first + found.users.count) of \(found.total)"
        }
        return view
    }

    /// Who a name on the person page is: a local user, or a person in the directory.
    enum Person { case local(User), directory(Identity) }

    func find(_ raw: String) async throws -> Person? {
        if let u = try await runtime.storage.user(username: Usernames.canonical(raw)) { return .local(u) }
        guard let directory = runtime.provider.directory, Usernames.canonical(raw).count <= 256 else { return nil }
        if case .success(let identity) = try await directory.lookup(username: Usernames.canonical(raw)) { return .directory(identity) }
        return nil
    }

    /// One person's page, or nil when there is no such person (local, or in the directory).
    func person(_ raw: String, chrome: Chrome) async throws -> PersonView? {
        guard let found = try await find(raw) else { return nil }
        let now = runtime.clock.now()
        let d = AdminPages.date
        let csrf = chrome.csrf
        typealias A = PersonView.Action
        let subject: String, username: String, displayName: String, email: String, groups: [String], source: String, status: String
        var local: User?
        switch found {
        case .local(let u):
            (subject, username, displayName, email, groups) = (u.id, u.username, u.displayName, u.email, u.groups)
            source = "local account" + (u.passwordHash == nil ? " without a password (Kerberos only)" : "")
            status = u.disabled ? "disabled" : "active"
            local = u
        case .directory(let identity):
            (subject, username, displayName, email, groups) = (identity.subject, identity.username, identity.displayName, identity.email, identity.groups)
            source = "directory (LDAP): name, groups and account state come from the directory and are changed there"
            status = "active in the directory"
        }
        let back = "/admin/users/" + FormParameters.escape(username)
        // Directory people are changed in the directory: no account actions for them here.
        let actions: [A] = local.map { u in [
                u.disabled ? A("Enable", action: "/admin/users/enable", csrf: csrf, username: u.username, back: back)
                    : A("Disable", action: "/admin/users/disable", csrf: csrf, username: u.username, back: back, danger: true),
                u.isAdmin ? A("Remove administrator", action: "/admin/users/demote", csrf: csrf, username: u.username, back: back, danger: true)
                    : A("Make administrator", action: "/admin/users/promote", csrf: csrf, username: u.username, back: back),
                A("Reset password", action: "/admin/users/password", csrf: csrf, username: u.username, back: back, input: "password",
                  inputLabel: "New password", inputType: "password"),
                A("Delete", action: "/admin/users/delete", csrf: csrf, username: u.username, back: back, danger: true),
            ]
        } ?? []
        let signout = A("Sign out everywhere", action: "/admin/users/signout", csrf: csrf, username: username, back: back, danger: true)
        let held = try await runtime.factors.factors(userID: subject).count
        let resetFactors = held == 0 ? [] : [A("Reset second factors (\(held))", action: "/admin/users/factors/reset", csrf: csrf, username: username,
                                               back: back, danger: true)]
        let viaGroups = groups.filter { runtime.config.adminGroups.contains($0) }
        let adminWhy = local?.isAdmin == true ? "yes (the administrator flag)"
            : (viaGroups.isEmpty ? "no" : "yes, through \(viaGroups.joined(separator: ", ")) in admin_groups")
        let families = try await runtime.storage.activeFamilies(userID: subject, now: now).map { f in
            PersonView.Family(id: f.id, device: DeviceName.describe(userAgent: f.userAgent), address: f.address.isEmpty ? nil : f.address,
                              client: f.grant.clientID, started: d(f.createdAt), lastUsed: d(f.lastUsedAt), csrf: csrf, back: back)
        }
        let credentials = try await runtime.storage.listCredentials(ownerID: subject, includeRevoked: true).map { c in
            PersonView.Credential(id: c.id, name: c.name, created: d(c.createdAt), expires: d(c.expiresAt),
                                  state: c.revokedAt != nil ? "revoked" : (c.expiresAt <= now ? "expired" : "active"), csrf: csrf, back: back)
        }
        let about = try await runtime.storage.auditEvents(AuditQuery(subject: subject, limit: 30))
        let by = try await runtime.storage.auditEvents(AuditQuery(actor: username, limit: 30))
        var seen = Set<Int64>()
        let events = (about + by).filter { seen.insert($0.id ?? -1).inserted }.sorted { ($0.id ?? 0) > ($1.id ?? 0) }.prefix(30).map { e in
            PersonView.Event(time: d(e.time), type: e.type, actor: e.actor.isEmpty ? "—" : e.actor, address: e.remoteAddress.isEmpty ? "—" : e.remoteAddress,
                             ok: e.success)
        }
        var view = PersonView(chrome: chrome, username: username, displayName: displayName, email: email.isEmpty ? "—" : email,
                              source: source, status: status, adminWhy: adminWhy, subject: subject, groups: groups,
                              browserSessions: actions.isEmpty ? "Disabling the account in the directory ends these at their next check (each refresh asks the directory)."
                                  : "Disabling the account or resetting its password ends every sign-in below.",
                              actions: actions + [signout] + resetFactors, families: families, credentials: credentials, events: Array(events),
                              auditLink: "/admin/audit?" + FormParameters.encode([("actor", username)]))
        view.auditAboutLink = "/admin/audit?" + FormParameters.encode([("subject", subject)])
        view.sessions = try await runtime.login.liveSessions(userID: subject).map {
            var s = PersonView.Session(method: $0.authMethod, started: d($0.createdAt), ends: d(runtime.login.idleEnd($0)))
            s.id = $0.sid; s.device = DeviceName.describe(userAgent: $0.userAgent); s.address = $0.address.isEmpty ? "—" : $0.address
            s.lastActive = AdminPages.ago($0.lastSeenAt, now: now); s.csrf = csrf; s.back = back
            return s
        }
        return view
    }
}
