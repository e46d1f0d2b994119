import Foundation
import Hummingbird
import IdP
import Templates

/// The admin UI: users, robots, credentials, refresh families, signing keys, clients, audit.
/// Every change is a CSRF-protected POST, audited with the admin as actor, and has a CLI twin.
struct AdminRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    typealias F = AdminView.Field
    typealias A = AdminView.Action
    typealias H = AdminView.Hidden

    struct Page { var notice: String?; var error: String?; var secret: String? }

    func register(_ router: Router<PortalContext>) {
        router.get("/admin") { _, _ in Responses.redirect("/admin/users") }
        for (path, _) in AdminView.sections where path != "/admin/apiserver" {
            router.get(RouterPath(stringLiteral: path)) { request, context in
                try await guarded(request, context) { admin, csrf in try await render(path, request, admin: admin, csrf: csrf, Page()) }
            }
        }
        post("/admin/users", "/admin/users") { form, admin, ctx in
            let groups = (form["groups"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let u = try await runtime.users.add(username: form["username"] ?? "", password: form["password"] ?? "", email: form["email"] ?? "",
                                                displayName: form["name"] ?? "", groups: groups, isAdmin: form["admin"] == "true", actor: admin.username)
            return Page(notice: "Created user \(u.username).")
        }
        post("/admin/users/disable", "/admin/users") { form, admin, _ in
            guard Usernames.canonical(form["username"] ?? "") != Usernames.canonical(admin.username) else {
                throw UserAdminError("You cannot disable yourself.")
            }
            try await runtime.users.setDisabled(form["username"] ?? "", disabled: true, actor: admin.username)
            return Page(notice: "Disabled \(form["username"] ?? ""): sessions and refresh tokens ended; credentials refused while disabled.")
        }
        post("/admin/users/enable", "/admin/users") { form, admin, _ in
            try await runtime.users.setDisabled(form["username"] ?? "", disabled: false, actor: admin.username)
            return Page(notice: "Enabled \(form["username"] ?? "").")
        }
        post("/admin/users/password", "/admin/users") { form, admin, _ in
            try await runtime.users.setPassword(form["username"] ?? "", password: form["password"] ?? "", actor: admin.username)
            return Page(notice: "Password reset for \(form["username"] ?? ""); their sessions and refresh tokens were revoked.")
        }
        post("/admin/users/delete", "/admin/users") { form, admin, _ in
            // Compare the account the name resolves to, not the text: ROOT-ADMIN and root-admin are one account.
            guard Usernames.canonical(form["username"] ?? "") != Usernames.canonical(admin.username) else {
                throw UserAdminError("You cannot delete yourself.")
            }
            try await runtime.users.delete(form["username"] ?? "", actor: admin.username)
            return Page(notice: "Deleted \(form["username"] ?? "").")
        }
        post("/admin/robots", "/admin/robots") { form, admin, _ in
            let r = try await RobotAdmin(runtime: runtime).add(name: form["name"] ?? "", team: form["team"] ?? "",
                                                               groups: form["groups"] ?? "", description: form["description"] ?? "",
                                                               actor: admin.username)
            return Page(notice: "Created robot \(r.username).")
        }
        post("/admin/robots/disable", "/admin/robots") { form, admin, _ in
            try await RobotAdmin(runtime: runtime).setDisabled(form["id"] ?? "", disabled: true, actor: admin.username)
            return Page(notice: "Robot disabled: its credentials stop working at once.")
        }
        post("/admin/robots/enable", "/admin/robots") { form, admin, _ in
            try await RobotAdmin(runtime: runtime).setDisabled(form["id"] ?? "", disabled: false, actor: admin.username)
            return Page(notice: "Robot enabled.")
        }
        post("/admin/robots/delete", "/admin/robots") { form, admin, _ in
            try await RobotAdmin(runtime: runtime).delete(form["id"] ?? "", actor: admin.username)
            return Page(notice: "Robot deleted and its credentials revoked.")
        }
        post("/admin/robots/credential", "/admin/robots") { form, admin, ctx in
            guard let robot = try await runtime.storage.robot(id: form["id"] ?? "") else { throw UserAdminError("No such robot.") }
            let (c, token) = try await runtime.credentials.create(owner: .robot(robot), name: form["name"] ?? "", description: "",
                                                                  lifetime: runtime.config.credentials.maxRobotLifetime, groups: nil,
                                                                  actor: admin.username, remoteAddress: ctx.remoteAddress)
            return Page(notice: "Credential “\(c.name)” for \(robot.username), valid until \(CredentialRoutes.date(c.expiresAt)).", secret: token)
        }
        post("/admin/credentials/revoke", "/admin/credentials") { form, admin, ctx in
            let done = try await runtime.credentials.revoke(id: form["id"] ?? "", actor: admin.username, remoteAddress: ctx.remoteAddress)
            return Page(notice: done ? "Credential revoked." : "It was already revoked.")
        }
        post("/admin/sessions/revoke", "/admin/sessions") { form, admin, _ in
            let id = form["id"] ?? ""
            let done = try await runtime.storage.revokeFamily(id: id, now: runtime.clock.now(), reason: "revoked by \(admin.username)")
            await runtime.provider.auditor.record("admin.session.revoke", actor: admin.username, subject: id)
            return Page(notice: done ? "Session revoked: its refresh token is dead and its access tokens stop working at /userinfo." : "It was already revoked.")
        }
        post("/admin/throttles/clear", "/admin/throttles") { form, admin, ctx in
            let key = form["key"] ?? ""
            let cleared = try await runtime.login.throttle.clear(key: key, now: runtime.clock.now())
            await runtime.provider.auditor.record("admin.throttle.clear", actor: admin.username, subject: key, remoteAddress: ctx.remoteAddress)
            return Page(notice: cleared.isEmpty ? "Nothing to clear: it had already expired." : "Cleared: the next attempt is not delayed.")
        }
        post("/admin/keys/rotate", "/admin/keys") { form, admin, ctx in
            let emergency = form["kind"] == "emergency"
            let r = try await runtime.keys.rotate(emergency ? .emergency : .routine)
            let details: [String: String] = ["kind": emergency ? "emergency" : "routine", "signs_at": String(Int(r.signsAt.timeIntervalSince1970))]
            await runtime.provider.auditor.record("admin.keys.rotate", actor: admin.username, subject: r.kid, remoteAddress: ctx.remoteAddress,
                                                  details: details)
            return Page(notice: KeysCommand.explain(r, now: runtime.clock.now()))
        }
    }

    func post(_ path: String, _ back: String, _ body: @escaping @Sendable (FormParameters, Identity, PortalContext) async throws -> Page) {
        // Registered lazily through `registerPost` (Router is a reference type).
        pendingPosts.append((path, back, body))
    }

    final class Box: @unchecked Sendable { var items: [(String, String, @Sendable (FormParameters, Identity, PortalContext) async throws -> Page)] = [] }
    let box = Box()
    var pendingPosts: [(String, String, @Sendable (FormParameters, Identity, PortalContext) async throws -> Page)] {
        get { box.items }
        nonmutating set { box.items = newValue }
    }

    func registerPosts(_ router: Router<PortalContext>) {
        for (path, back, body) in pendingPosts {
            router.post(RouterPath(stringLiteral: path)) { request, context in
                var request = request
                guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
                    return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                             requestID: context.requestID, backLink: back, backLabel: "Back")))
                }
                return try await guarded(request, context) { admin, csrf in
                    do {
                        let page = try await body(form, admin, context)
                        return try await render(back, request, admin: admin, csrf: csrf, page)
                    } catch let e as UserAdminError {
                        return try await render(back, request, admin: admin, csrf: csrf, Page(error: e.description), status: .badRequest)
                    } catch let e as CredentialError {
                        return try await render(back, request, admin: admin, csrf: csrf, Page(error: e.description), status: .badRequest)
                    }
                }
            }
        }
    }

    func guarded(_ request: Request, _ context: PortalContext, _ body: (Identity, String) async throws -> Response) async throws -> Response {
        guard let (_, identity) = try await session(request) else {
            return Responses.redirect("/login?next=" + FormParameters.escape(request.uri.path), status: .seeOther)
        }
        guard isAdmin(identity, runtime) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "Administrators only", message: "This page is for administrators.",
                                                                     requestID: context.requestID)))
        }
        let (bid, _) = browser.browserID(request)
        return try await body(identity, browser.csrfToken(browserID: bid))
    }

    // MARK: Rendering

    func render(_ path: String, _ request: Request, admin: Identity, csrf: String, _ page: Page,
                status: HTTPResponse.Status = .ok) async throws -> Response {
        let q = request.queryParameters ?? FormParameters()
        var view: AdminView
        let d = CredentialRoutes.date
        switch path {
        case "/admin/users":
            let users = try await runtime.storage.listUsers()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Users",
                             intro: "Local accounts. Directory (LDAP) users are managed in the directory.",
                             forms: [.init(title: "Add a user", action: "/admin/users", submit: "Add user", csrf: csrf, fields: [
                                 F("username", "Username", required: true), F("password", "Password", type: "password", required: true),
                                 F("name", "Display name"), F("email", "Email", type: "email"),
                                 F("groups", "Groups (comma-separated)"), F("admin", "Administrator", type: "checkbox"),
                             ])],
                             columns: ["Username", "Name", "Email", "Groups", "Status"],
                             rows: users.map { u in
                                 let who = [H("username", u.username)]
                                 return AdminView.Row(cells: [u.username, u.displayName, u.email, u.groups.joined(separator: ", "),
                                                              [u.isAdmin ? "admin" : nil, u.disabled ? "disabled" : "active"].compactMap { $0 }.joined(separator: ", ")],
                                                      actions: [
                                                          u.disabled ? A("Enable", action: "/admin/users/enable", csrf: csrf, hidden: who)
                                                              : A("Disable", action: "/admin/users/disable", csrf: csrf, hidden: who, danger: true),
                                                          A("Reset password", action: "/admin/users/password", csrf: csrf, hidden: who, input: "password",
                                                            inputLabel: "new password", inputType: "password"),
                                                          A("Delete", action: "/admin/users/delete", csrf: csrf, hidden: who, danger: true),
                                                      ])
                             })
        case "/admin/robots":
            let robots = try await runtime.storage.listRobots()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Robots",
                             intro: "Accounts for CI jobs and controllers, owned by a team. Kubernetes sees them as robot:<name>. Secrets are never listed.",
                             forms: [.init(title: "Add a robot", action: "/admin/robots", submit: "Add robot", csrf: csrf, fields: [
                                 F("name", "Name (a-z, 0-9, -)", required: true), F("team", "Owning team (group)", required: true),
                                 F("groups", "Groups (comma-separated)"), F("description", "Description"),
                             ])],
                             columns: ["Username", "Team", "Groups", "Description", "Status"],
                             rows: robots.map { r in
                                 let who = [H("id", r.id)]
                                 return AdminView.Row(cells: [r.username, r.team, r.groups.joined(separator: ", "), r.description, r.disabled ? "disabled" : "active"],
                                                      actions: [
                                                          A("New credential", action: "/admin/robots/credential", csrf: csrf, hidden: who, input: "name",
                                                            inputLabel: "credential name"),
                                                          r.disabled ? A("Enable", action: "/admin/robots/enable", csrf: csrf, hidden: who)
                                                              : A("Disable", action: "/admin/robots/disable", csrf: csrf, hidden: who, danger: true),
                                                          A("Delete", action: "/admin/robots/delete", csrf: csrf, hidden: who, danger: true),
                                                      ])
                             })
        case "/admin/credentials":
            let owner = q["owner"].flatMap { $0.isEmpty ? nil : $0 }
            var ownerID = owner
            if let o = owner {
                if let u = try await runtime.storage.user(username: Usernames.canonical(o)) { ownerID = u.id }
                else if let r = try await runtime.storage.robot(name: o.replacingOccurrences(of: Robot.usernamePrefix, with: "")) { ownerID = r.id }
            }
            let creds = try await runtime.storage.listCredentials(ownerID: ownerID, includeRevoked: true)
            let now = runtime.clock.now()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Application credentials",
                             forms: [.init(title: "Filter by owner", action: "/admin/credentials", submit: "Filter", csrf: csrf,
                                           fields: [F("owner", "Owner (username or robot name)", value: owner ?? "")], method: "get")],
                             columns: ["Name", "Id", "Owner", "Created", "Last used", "Expires", "State"],
                             rows: creds.map { c in
                                 let state = c.revokedAt != nil ? "revoked" : (c.expiresAt <= now ? "expired" : "active")
                                 return AdminView.Row(cells: [c.name, c.id, "\(c.ownerKind.rawValue) \(c.ownerID)", d(c.createdAt), d(c.lastUsedAt), d(c.expiresAt), state],
                                                      actions: state == "active" ? [A("Revoke", action: "/admin/credentials/revoke", csrf: csrf,
                                                                                      hidden: [H("id", c.id)], danger: true)] : [])
                             })
        case "/admin/sessions":
            let families = try await runtime.storage.activeFamilies(userID: nil, now: runtime.clock.now())
            var names: [String: String] = [:]
            for u in try await runtime.storage.listUsers() { names[u.id] = u.username }
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Active sessions",
                             intro: "Each row is one login on one device: a chain of rotating refresh tokens.",
                             columns: ["User", "Client", "Method", "Started", "Last refresh", "Ends"],
                             rows: families.prefix(500).map { f in
                                 AdminView.Row(cells: [names[f.grant.userID] ?? f.grant.userID, f.grant.clientID, f.grant.authMethod, d(f.createdAt),
                                                       d(f.lastUsedAt), d(f.expiresAt)],
                                               actions: [A("Revoke", action: "/admin/sessions/revoke", csrf: csrf, hidden: [H("id", f.id)], danger: true)])
                             })
        case "/admin/keys":
            let status = await runtime.keys.status()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Signing keys",
                             intro: "Routine rotation: the published next key signs once every verifier can have it (it has been in JWKS long enough). Emergency rotation, for a suspected compromise: a new key signs at once and every other key leaves JWKS, so tokens they signed stop verifying and verifiers may refuse new tokens for up to a minute.",
                             forms: [.init(title: "Rotate", action: "/admin/keys/rotate", submit: "Rotate signing key", csrf: csrf, fields: [
                                 F("kind", "Routine or emergency (type emergency for a suspected compromise)"),
                             ])],
                             columns: ["Key id", "Algorithm", "State", "Signs from", "Leaves JWKS", "At rest"],
                             rows: status.map { s in
                                 AdminView.Row(cells: [s.kid, s.algorithm.rawValue, s.state, d(s.activatesAt), s.expiresAt.map { d($0) } ?? "—",
                                                       s.encrypted ? "encrypted" : "NOT encrypted"])
                             })
        case "/admin/throttles":
            let now = runtime.clock.now()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "Sign-in throttles",
                             intro: "Failed sign-ins and client authentications, counted per account and address. An address an account has signed in from before is never delayed by failures elsewhere. Clearing a row lets the next attempt through at once.",
                             columns: ["Counts", "Account", "Address", "Failures", "Delayed until"],
                             rows: try await runtime.login.throttle.list(now: now).map { s in
                                 let (kind, account, address) = ThrottleKey.describe(s.key)
                                 return AdminView.Row(cells: [kind, account, address, "\(s.failures)", s.lockedUntil.map { $0 > now ? d($0) : "—" } ?? "—"],
                                                      actions: [A("Clear", action: "/admin/throttles/clear", csrf: csrf, hidden: [H("key", s.key)])])
                             })
        case "/admin/clients":
            let clients = try await runtime.provider.clients.all()
            view = AdminView(csrf: csrf, username: admin.username, current: path, heading: "OAuth clients",
                             intro: "Declared in the configuration file or added with `portal client add`.",
                             columns: ["Client id", "Name", "Type", "Redirect URIs", "Source"],
                             rows: clients.map { c in
                                 AdminView.Row(cells: [c.id, c.name, c.isPublic ? "public (PKCE)" : "confidential", c.redirectURIs.joined(separator: " "),
                                                       runtime.provider.clients.isConfigured(c.id) ? "configuration" : "database"])
                             })
        default:  // audit
            let type = q["type"].flatMap { $0.isEmpty ? nil : $0 }
            let actor = q["actor"].flatMap { $0.isEmpty ? nil : $0 }
            let before = q["before"].flatMap { Int64($0) }
            let events = try await runtime.storage.auditEvents(AuditQuery(type: type, actor: actor, before: before, limit: 50))
            var next: String?
            if events.count == 50, let last = events.last?.id {
                var params: [(String, String)] = [("before", String(last))]
                if let type { params.append(("type", type)) }
                if let actor { params.append(("actor", actor)) }
                next = "/admin/audit?" + FormParameters.encode(params)
            }
            view = AdminView(csrf: csrf, username: admin.username, current: "/admin/audit", heading: "Audit log",
                             forms: [.init(title: "Filter", action: "/admin/audit", submit: "Filter", csrf: csrf, fields: [
                                 F("type", "Event type (e.g. login.failure)", value: type ?? ""), F("actor", "Actor", value: actor ?? ""),
                             ], method: "get")],
                             columns: ["#", "Time", "Event", "Result", "Actor", "Subject", "Client", "Address", "Details"],
                             rows: events.map { e in
                                 AdminView.Row(cells: [String(e.id ?? 0), d(e.time), e.type, e.success ? "ok" : "FAILED", e.actor, e.subject, e.clientID,
                                                       e.remoteAddress, e.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")])
                             },
                             nextPage: next)
        }
        view.notice = page.notice
        view.error = page.error
        view.secret = page.secret
        return Responses.html(status, pages.render(view))
    }
}

/// Robot accounts (admin only; CLI and UI share it).
struct RobotAdmin {
    let runtime: Runtime

    func add(name raw: String, team: String, groups: String, description: String, actor: String) async throws -> Robot {
        let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
        guard !name.isEmpty, name.count <= 63, name.allSatisfy({ ($0.isLetter && $0.isASCII) || $0.isNumber || $0 == "-" }), name.first != "-" else {
            throw UserAdminError("A robot name uses a-z, 0-9 and '-' (at most 63).")
        }
        let team = team.trimmingCharacters(in: .whitespaces)
        guard !team.isEmpty else { throw UserAdminError("A robot needs an owning team.") }
        let list = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let robot = Robot(id: runtime.random.uuid(), name: name, team: team, description: description, groups: list,
                          createdAt: runtime.clock.now(), createdBy: actor)
        do { try await runtime.storage.createRobot(robot) } catch let e as StorageError where e.isConflict {
            throw UserAdminError("A robot named \(name) exists.")
        }
        await runtime.provider.auditor.record("admin.robot.add", actor: actor, subject: robot.id, details: ["name": name, "team": team])
        return robot
    }

    func setDisabled(_ id: String, disabled: Bool, actor: String) async throws {
        guard try await runtime.storage.setRobotDisabled(id: id, disabled: disabled) else { throw UserAdminError("No such robot.") }
        await runtime.provider.auditor.record(disabled ? "admin.robot.disable" : "admin.robot.enable", actor: actor, subject: id)
    }

    func delete(_ id: String, actor: String) async throws {
        _ = try await runtime.storage.revokeCredentials(ownerID: id, now: runtime.clock.now())
        guard try await runtime.storage.deleteRobot(id: id) else { throw UserAdminError("No such robot.") }
        await runtime.provider.auditor.record("admin.robot.delete", actor: actor, subject: id)
    }
}
