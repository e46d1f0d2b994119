import Foundation
import Hummingbird
import IdP
import Templates

/// The admin UI: users, robots, credentials, refresh families, signing keys, clients, audit.
/// Every change is a CSRF-protected POST, audited with the admin as actor, and has a CLI twin.
/// Destructive changes answer first with a confirmation page that names what will stop working;
/// only the second POST (`confirm=yes`) acts. Every change ends in a 303 (Post/Redirect/Get), so a
/// reload never repeats it.
struct AdminRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    typealias H = AdminView.Hidden

    /// What a change did: a word for the next page, or a one-time secret to show once.
    enum Outcome { case notice(String), reveal(kind: String, payload: [String: String], notice: String) }

    struct Post: Sendable {
        let path, back: String
        let confirm: (@Sendable (FormParameters, Identity) async throws -> Confirmation)?
        let body: @Sendable (FormParameters, Identity, PortalContext) async throws -> Outcome
    }

    static let webhookCache = "within 2 minutes (the API server caches webhook answers for its cache TTL, 2 minutes by default)"

    func register(_ router: Router<PortalContext>) {
        router.get("/admin") { _, _ in Responses.redirect("/admin/users") }
        let pagesOf = AdminPages(runtime: runtime)
        for (path, _) in AdminSections.all where path != "/admin/apiserver" {
            router.get(RouterPath(stringLiteral: path)) { request, context in
                try await guarded(request, context) { admin, chrome, cookies in
                    let (flash, clear) = browser.takeFlash(request)
                    var view = try await pagesOf.view(path, request.queryParameters ?? FormParameters(), admin: admin, chrome: chrome)
                    view.notice = flash?.notice; view.error = flash?.error
                    return Responses.html(.ok, pages.render(view), cookies: cookies + clear)
                }
            }
        }
        router.get("/admin/users/:name") { request, context in
            try await guarded(request, context) { _, chrome, cookies in
                guard var view = try await PersonPage(runtime: runtime).person(context.parameters.get("name") ?? "", chrome: chrome) else {
                    return Responses.html(.notFound, pages.render(ErrorView(heading: "No such person", message: "There is no local user, and no active person in the directory, by that name.",
                                                                            requestID: context.requestID, backLink: "/admin/users", backLabel: "Back to users")))
                }
                let (flash, clear) = browser.takeFlash(request)
                view.notice = flash?.notice; view.error = flash?.error
                return Responses.html(.ok, pages.render(view), cookies: cookies + clear)
            }
        }
        router.get("/admin/robots/credential") { request, context in
            try await guarded(request, context) { _, chrome, cookies in
                guard let robot = try await runtime.storage.robot(id: request.queryParameters?["id"] ?? "") else {
                    return Responses.html(.notFound, pages.render(ErrorView(heading: "No such robot", message: "It may have been deleted.",
                                                                            requestID: context.requestID, backLink: "/admin/robots", backLabel: "Back to robots")))
                }
                let (flash, clear) = browser.takeFlash(request)
                return Responses.html(.ok, pages.render(robotCredentialForm(robot, chrome: chrome, error: flash?.error)), cookies: cookies + clear)
            }
        }
        for p in posts() { registerPost(router, p) }
    }

    func robotCredentialForm(_ robot: Robot, chrome: Chrome, error: String? = nil) -> CredentialsView {
        let forms = CredentialForms(runtime: runtime)
        var view = CredentialsView(chrome: chrome, intro: "A token for \(robot.username) (team \(robot.team)). It works with stock kubectl through the TokenReview webhook until it expires or is revoked, and stops at once if the robot is disabled.",
                                   lifetimes: forms.lifetimes(max: runtime.config.credentials.maxRobotLifetime), groups: robot.groups, items: [],
                                   error: error)
        view.heading = "New credential for \(robot.username)"
        view.admin = .init(tabs: AdminSections.tabs(current: "/admin/robots"))
        view.formAction = "/admin/robots/credential"
        view.ownerID = robot.id
        view.whose = "the robot's"
        view.showList = false
        return view
    }

    // MARK: The changes

    var signout: Signout { Signout(provider: runtime.provider) }

    func browserSession(_ id: String?) async throws -> LoginSession {
        guard let s = try await runtime.storage.session(sid: id ?? ""), s.expiresAt > runtime.clock.now() else {
            throw UserAdminError("No such browser session: it has ended.")
        }
        return s
    }

    /// A local or directory person by name: (subject, username).
    func person(_ raw: String?) async throws -> (String, String) {
        switch try await PersonPage(runtime: runtime).find(raw ?? "") {
        case .local(let u): return (u.id, u.username)
        case .directory(let i): return (i.subject, i.username)
        case nil: throw UserAdminError("No such person.")
        }
    }

    func posts() -> [Post] {
        let users = runtime.users
        let counts = AdminCounts(runtime: runtime)
        return [
            Post(path: "/admin/users", back: "/admin/users", confirm: nil) { form, admin, _ in
                let groups = (form["groups"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let u = try await users.add(username: form["username"] ?? "", password: form["password"] ?? "", email: form["email"] ?? "",
                                            displayName: form["name"] ?? "", groups: groups, isAdmin: form["admin"] == "true", actor: admin.username)
                return .notice("Created user \(u.username).")
            },
            Post(path: "/admin/users/disable", back: "/admin/users", confirm: { form, admin in
                let u = try await counts.removable(form, by: admin, verb: "disable")
                return Confirmation(heading: "Disable \(u.username)?",
                                    consequences: try await counts.personEnds(u) + ["You can enable \(u.username) again later; their credentials then work again."],
                                    submit: "Disable \(u.username)")
            }) { form, admin, _ in
                try await users.setDisabled(form["username"] ?? "", disabled: true, actor: admin.username, actorID: admin.subject)
                return .notice("Disabled \(form["username"] ?? ""): sessions and refresh tokens ended; credentials refused while disabled.")
            },
            Post(path: "/admin/users/enable", back: "/admin/users", confirm: nil) { form, admin, _ in
                try await users.setDisabled(form["username"] ?? "", disabled: false, actor: admin.username)
                return .notice("Enabled \(form["username"] ?? "").")
            },
            Post(path: "/admin/users/promote", back: "/admin/users", confirm: nil) { form, admin, _ in
                try await users.setAdmin(form["username"] ?? "", isAdmin: true, actor: admin.username)
                return .notice("\(form["username"] ?? "") is now an administrator.")
            },
            Post(path: "/admin/users/demote", back: "/admin/users", confirm: { form, admin in
                let u = try await counts.removable(form, by: admin, verb: "remove administration from")
                return Confirmation(heading: "Remove administration from \(u.username)?",
                                    consequences: ["\(u.username) can no longer open the admin pages (unless a directory group in admin_groups makes them one)."],
                                    submit: "Remove administrator")
            }) { form, admin, _ in
                try await users.setAdmin(form["username"] ?? "", isAdmin: false, actor: admin.username, actorID: admin.subject)
                return .notice("\(form["username"] ?? "") is no longer an administrator.")
            },
            Post(path: "/admin/users/password", back: "/admin/users", confirm: nil) { form, admin, _ in
                try await users.setPassword(form["username"] ?? "", password: form["password"] ?? "", actor: admin.username)
                return .notice("Password reset for \(form["username"] ?? ""); their sessions and refresh tokens were revoked.")
            },
            Post(path: "/admin/users/delete", back: "/admin/users", confirm: { form, admin in
                let u = try await counts.removable(form, by: admin, verb: "delete")
                return Confirmation(heading: "Delete \(u.username)?",
                                    consequences: try await counts.personEnds(u) + ["This cannot be undone: the account, its credentials and its sign-ins are gone for good."],
                                    submit: "Delete \(u.username)")
            }) { form, admin, _ in
                try await users.delete(form["username"] ?? "", actor: admin.username, actorID: admin.subject)
                return .notice("Deleted \(form["username"] ?? "").")
            },
            Post(path: "/admin/robots", back: "/admin/robots", confirm: nil) { form, admin, _ in
                let r = try await RobotAdmin(runtime: runtime).add(name: form["name"] ?? "", team: form["team"] ?? "", groups: form["groups"] ?? "",
                                                                   description: form["description"] ?? "", actor: admin.username)
                return .notice("Created robot \(r.username). Give it a credential with “New credential”.")
            },
            Post(path: "/admin/robots/disable", back: "/admin/robots", confirm: { form, _ in
                let r = try await counts.robot(form["id"])
                return Confirmation(heading: "Disable \(r.username)?", consequences: try await counts.robotEnds(r) + ["You can enable it again later."],
                                    submit: "Disable \(r.username)")
            }) { form, admin, _ in
                try await RobotAdmin(runtime: runtime).setDisabled(form["id"] ?? "", disabled: true, actor: admin.username)
                return .notice("Robot disabled: its credentials are refused.")
            },
            Post(path: "/admin/robots/enable", back: "/admin/robots", confirm: nil) { form, admin, _ in
                try await RobotAdmin(runtime: runtime).setDisabled(form["id"] ?? "", disabled: false, actor: admin.username)
                return .notice("Robot enabled.")
            },
            Post(path: "/admin/robots/delete", back: "/admin/robots", confirm: { form, _ in
                let r = try await counts.robot(form["id"])
                return Confirmation(heading: "Delete \(r.username)?",
                                    consequences: try await counts.robotEnds(r) + ["This cannot be undone: its credentials are revoked for good."],
                                    submit: "Delete \(r.username)")
            }) { form, admin, _ in
                try await RobotAdmin(runtime: runtime).delete(form["id"] ?? "", actor: admin.username)
                return .notice("Robot deleted and its credentials revoked.")
            },
            Post(path: "/admin/robots/credential", back: "/admin/robots", confirm: nil) { form, admin, ctx in
                let robot = try await counts.robot(form["id"])
                let request = try CredentialForms(runtime: runtime).read(form, ownerGroups: robot.groups, max: runtime.config.credentials.maxRobotLifetime)
                let (c, token) = try await runtime.credentials.create(owner: .robot(robot), name: request.name, description: request.description,
                                                                      lifetime: request.lifetime, groups: request.groups,
                                                                      actor: admin.username, remoteAddress: ctx.remoteAddress)
                return .reveal(kind: "credential", payload: ["token": token, "name": c.name, "user": robot.username, "back": "/admin/robots"],
                               notice: "Created “\(c.name)” for \(robot.username), valid until \(AdminPages.date(c.expiresAt)).")
            },
            Post(path: "/admin/credentials/revoke", back: "/admin/credentials", confirm: { form, _ in
                guard let c = try await runtime.storage.credential(id: form["id"] ?? "") else { throw UserAdminError("No such credential.") }
                let owner = try await counts.ownerName(c)
                return Confirmation(heading: "Revoke “\(c.name)”?",
                                    consequences: ["\(owner)'s credential “\(c.name)” stops authenticating \(Self.webhookCache).",
                                                   "Whatever uses it (a CI job, a script) needs a new credential."],
                                    submit: "Revoke credential")
            }) { form, admin, ctx in
                let done = try await runtime.credentials.revoke(id: form["id"] ?? "", actor: admin.username, remoteAddress: ctx.remoteAddress)
                return .notice(done ? "Credential revoked." : "It was already revoked.")
            },
            Post(path: "/admin/sessions/revoke", back: "/admin/sessions", confirm: { form, _ in
                guard let f = try await runtime.storage.family(id: form["id"] ?? "") else { throw UserAdminError("No such session.") }
                let who = try await counts.userName(f.grant.userID)
                return Confirmation(heading: "End \(who)'s sign-in?",
                                    consequences: ["The sign-in from \(DeviceName.describe(userAgent: f.userAgent))\(f.address.isEmpty ? "" : " at \(f.address)"), started \(AdminPages.date(f.createdAt)), ends: its refresh token stops working at once.",
                                                   "kubectl there asks for a new sign-in when its current token expires (within \(DurationParser.words(runtime.config.tokens.idTokenTTL)))."],
                                    submit: "End this sign-in")
            }) { form, admin, ctx in
                guard let f = try await runtime.storage.family(id: form["id"] ?? "") else { throw UserAdminError("No such session.") }
                let done = try await signout.endFamily(f, reason: "ended by an administrator")
                await runtime.provider.auditor.record("admin.session.revoke", actor: admin.username, subject: f.grant.userID, clientID: f.grant.clientID,
                                                      remoteAddress: ctx.remoteAddress, details: ["family": f.id])
                return .notice(done ? "Session revoked: its refresh token is dead and its access tokens stop working at /userinfo." : "It was already revoked.")
            },
            Post(path: "/admin/sessions/end", back: "/admin/sessions", confirm: { form, _ in
                let s = try await browserSession(form["id"])
                let who = try await counts.userName(s.userID)
                return Confirmation(heading: "Sign \(who) out of this browser?",
                                    consequences: ["The portal session in \(DeviceName.describe(userAgent: s.userAgent))\(s.address.isEmpty ? "" : " at \(s.address)"), signed in \(AdminPages.date(s.createdAt)), ends.",
                                                   "Every kubectl and application session started from that browser ends too; applications that take back-channel logout are told."],
                                    submit: "Sign out this browser")
            }) { form, admin, ctx in
                let s = try await browserSession(form["id"])
                let ended = try await signout.endBrowserSession(s, scope: .all, reason: "ended by an administrator")
                await runtime.provider.auditor.record("admin.session.end", actor: admin.username, subject: s.userID, remoteAddress: ctx.remoteAddress,
                                                      details: ["session": s.sid, "families": String(ended.families)])
                return .notice("Signed out; \(AdminCounts.plural(ended.families, "kubectl or application session", "kubectl or application sessions")) ended with it.")
            },
            Post(path: "/admin/users/signout", back: "/admin/users", confirm: { form, _ in
                let (subject, name) = try await person(form["username"])
                let browsers = try await runtime.storage.sessions(userID: subject, now: runtime.clock.now()).count
                let families = try await runtime.storage.activeFamilies(userID: subject, now: runtime.clock.now()).count
                return Confirmation(heading: "Sign \(name) out everywhere?",
                                    consequences: ["\(AdminCounts.plural(browsers, "browser session ends", "browser sessions end")) and \(AdminCounts.plural(families, "kubectl or application session ends", "kubectl or application sessions end")) at once; kubectl stops within \(DurationParser.words(runtime.config.tokens.idTokenTTL)).",
                                                   "\(name) can sign in again (disable the account to prevent that). Application credentials are not affected."],
                                    submit: "Sign \(name) out everywhere")
            }) { form, admin, ctx in
                let (subject, name) = try await person(form["username"])
                let ended = try await signout.endEverywhere(userID: subject, reason: "ended by an administrator")
                await runtime.provider.auditor.record("admin.user.signout", actor: admin.username, subject: subject, remoteAddress: ctx.remoteAddress,
                                                      details: ["username": name, "sessions": String(ended.sessions), "families": String(ended.families)])
                return .notice("\(name) is signed out everywhere: \(AdminCounts.plural(ended.sessions, "browser session", "browser sessions")) and \(AdminCounts.plural(ended.families, "kubectl or application session", "kubectl or application sessions")) ended.")
            },
            Post(path: "/admin/users/factors/reset", back: "/admin/users", confirm: { form, _ in
                let (subject, name) = try await person(form["username"])
                let held = try await runtime.factors.factors(userID: subject).count
                return Confirmation(heading: "Reset \(name)'s second factors?",
                                    consequences: ["\(AdminCounts.plural(held, "second factor is", "second factors are")) and every recovery code of \(name) removed.",
                                                   "\(name) is signed out everywhere (browsers, kubectl and applications), and signs in next with a password alone — then enrolls again where the policy requires it."],
                                    submit: "Reset \(name)'s factors")
            }) { form, admin, ctx in
                let (subject, name) = try await person(form["username"])
                let removed = try await runtime.factors.reset(userID: subject, username: name, by: admin.username, remoteAddress: ctx.remoteAddress)
                let ended = try await signout.endEverywhere(userID: subject, reason: "second factors reset by an administrator")
                return .notice("Removed \(AdminCounts.plural(removed, "second factor", "second factors")) of \(name); \(AdminCounts.plural(ended.sessions, "browser session", "browser sessions")) and \(AdminCounts.plural(ended.families, "kubectl or application session", "kubectl or application sessions")) ended.")
            },
            Post(path: "/admin/throttles/clear", back: "/admin/throttles", confirm: nil) { form, admin, ctx in
                let key = form["key"] ?? ""
                let cleared = try await runtime.login.throttle.clear(key: key, now: runtime.clock.now())
                await runtime.provider.auditor.record("admin.throttle.clear", actor: admin.username, subject: key, remoteAddress: ctx.remoteAddress)
                return .notice(cleared.isEmpty ? "Nothing to clear: it had already expired." : "Cleared: the next attempt is not delayed.")
            },
            Post(path: "/admin/keys/rotate", back: "/admin/keys", confirm: { _, _ in
                Confirmation(heading: "Rotate the signing key?", consequences: [], submit: "Rotate signing key",
                             choice: .init(legend: "Which rotation", options: [
                                 .init(name: "kind", value: "routine", label: "Routine",
                                       hint: "The published next key starts signing once every verifier can have it. Nothing stops working.", selected: true),
                                 .init(name: "kind", value: "emergency", label: "Emergency (suspected compromise)",
                                       hint: "A new key signs at once and every other key leaves JWKS: tokens they signed stop verifying, and API servers may refuse new tokens for up to a minute."),
                             ]))
            }) { form, admin, ctx in
                let emergency = form["kind"] == "emergency"
                let r = try await runtime.keys.rotate(emergency ? .emergency : .routine)
                let details: [String: String] = ["kind": emergency ? "emergency" : "routine", "signs_at": String(Int(r.signsAt.timeIntervalSince1970))]
                await runtime.provider.auditor.record("admin.keys.rotate", actor: admin.username, subject: r.kid, remoteAddress: ctx.remoteAddress,
                                                      details: details)
                return .notice(KeysCommand.explain(r, now: runtime.clock.now()))
            },
        ]
    }

    // MARK: Machinery

    func registerPost(_ router: Router<PortalContext>, _ p: Post) {
        router.post(RouterPath(stringLiteral: p.path)) { request, context in
            var request = request
            guard let form = try? await request.form(limit: runtime.config.maxBodyBytes), browser.csrfValid(request, form: form) else {
                return Responses.html(.forbidden, pages.render(ErrorView(heading: "This form has expired", message: "Reload the page and try again.",
                                                                         requestID: context.requestID, backLink: p.back, backLabel: "Back")))
            }
            // A change made from a person's page goes back there (only admin pages; deleting goes to the list).
            let back = form["back"].flatMap { BrowserRoutes.safeNext($0) }.flatMap { $0.hasPrefix("/admin/") && p.path != "/admin/users/delete" ? $0 : nil } ?? p.back
            let p = Post(path: p.path, back: back, confirm: p.confirm, body: p.body)
            return try await guarded(request, context, next: p.back) { admin, chrome, cookies in
                do {
                    if let confirm = p.confirm, form["confirm"] != "yes" {
                        let c = try await confirm(form, admin)
                        let chosen = Set(c.choice?.options.map(\.name) ?? [])
                        let hidden = form.pairs.filter { !["csrf", "confirm"].contains($0.0) && !chosen.contains($0.0) }.map { H($0.0, $0.1) }
                        return Responses.html(.ok, pages.render(c.view(chrome: chrome, action: p.path, hidden: hidden, cancel: p.back)), cookies: cookies)
                    }
                    switch try await p.body(form, admin, context) {
                    case .notice(let n): return browser.done(request, p.back, notice: n, cookies: cookies)
                    case .reveal(let kind, let payload, let notice):
                        return try await Reveals(runtime: runtime, browser: browser).stash(kind: kind, payload: payload, request: request, owner: admin, notice: notice)
                    }
                } catch let e as UserAdminError {
                    return failed(p, request, form, e.description, cookies)
                } catch let e as CredentialError {
                    return failed(p, request, form, e.description, cookies)
                }
            }
        }
    }

    /// Nothing changed: back to the page with the reason (a 303 too, so a reload sends nothing again).
    func failed(_ p: Post, _ request: Request, _ form: FormParameters, _ why: String, _ cookies: [String]) -> Response {
        let back = p.path == "/admin/robots/credential" ? "/admin/robots/credential?id=" + FormParameters.escape(form["id"] ?? "") : p.back
        return browser.done(request, back, error: why, cookies: cookies)
    }

    func guarded(_ request: Request, _ context: PortalContext, next: String? = nil,
                 _ body: (Identity, Chrome, [String]) async throws -> Response) async throws -> Response {
        guard let (session, identity) = try await session(request) else {
            return Responses.redirect("/login?next=" + FormParameters.escape(next ?? request.uri.path), status: .seeOther)
        }
        guard isAdmin(identity, runtime) else {
            return Responses.html(.forbidden, pages.render(ErrorView(heading: "Administrators only", message: "This page is for administrators.",
                                                                     requestID: context.requestID)))
        }
        // Step-up: an administrator holding a factor confirms one again when the last confirmation is older than mfa.step_up.
        if try await StepUp(runtime: runtime).needed(session, within: runtime.config.mfa.stepUp) {
            let target = next ?? (request.uri.query.map { request.uri.path + "?" + $0 } ?? request.uri.path)
            return Responses.redirect("/step-up?next=" + FormParameters.escape(BrowserRoutes.safeNext(target) ?? "/admin"), status: .seeOther)
        }
        let (chrome, cookies) = browser.chrome(request, identity, isAdmin: true, section: .admin)
        return try await body(identity, chrome, cookies)
    }
}

/// The question asked before a change (admin or a person's own): what stops working, and the one
/// button that does it. A choice (rotation kind, overlap) makes it a primary button; without one
/// the change only destroys, and the button says so in red.
struct Confirmation {
    var heading: String
    var consequences: [String]
    var submit: String
    var choice: ConfirmView.Choice? = nil

    func view(chrome: Chrome, action: String, hidden: [AdminView.Hidden], cancel: String) -> ConfirmView {
        ConfirmView(chrome: chrome, heading: heading, consequences: consequences, action: action, hidden: hidden, choice: choice,
                    submit: submit, danger: choice == nil, cancel: cancel)
    }
}

/// Words for confirmation pages: who an id names, and what a change ends.
struct AdminCounts {
    let runtime: Runtime

    func robot(_ id: String?) async throws -> Robot {
        guard let r = try await runtime.storage.robot(id: id ?? "") else { throw UserAdminError("No such robot.") }
        return r
    }

    /// The account named in the form, once it is clear the admin may take it away (not themself).
    func removable(_ form: FormParameters, by admin: Identity, verb: String) async throws -> User {
        let u = try await runtime.users.resolve(form["username"] ?? "")
        try await runtime.users.checkRemoval(u, verb: verb, actorID: admin.subject)
        return u
    }

    func userName(_ id: String) async throws -> String { try await runtime.storage.user(id: id)?.username ?? "a deleted or directory user" }

    func ownerName(_ c: ApplicationCredential) async throws -> String {
        switch c.ownerKind {
        case .user: return try await userName(c.ownerID)
        case .robot: return try await runtime.storage.robot(id: c.ownerID)?.username ?? "a deleted robot"
        }
    }

    static func plural(_ n: Int, _ one: String, _ many: String) -> String { "\(n) \(n == 1 ? one : many)" }

    func personEnds(_ u: User) async throws -> [String] {
        let now = runtime.clock.now()
        let families = try await runtime.storage.activeFamilies(userID: u.id, now: now).count
        let creds = try await runtime.storage.listCredentials(ownerID: u.id, includeRevoked: false).filter { $0.expiresAt > now }.count
        return ["\(u.username) is signed out of the portal everywhere; their \(Self.plural(families, "kubectl sign-in stops", "kubectl sign-ins stop")) refreshing at once, so kubectl stops within \(DurationParser.words(runtime.config.tokens.idTokenTTL)) (the lifetime of a token already issued).",
                "\(u.username)'s \(Self.plural(creds, "credential stops", "credentials stop")) authenticating \(AdminRoutes.webhookCache)."]
    }

    func robotEnds(_ r: Robot) async throws -> [String] {
        let now = runtime.clock.now()
        let creds = try await runtime.storage.listCredentials(ownerID: r.id, includeRevoked: false).filter { $0.expiresAt > now }.count
        return ["\(r.username)'s \(Self.plural(creds, "credential stops", "credentials stop")) authenticating \(AdminRoutes.webhookCache)."]
    }
}
