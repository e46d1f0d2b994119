import ArgumentParser
import Foundation
import IdP

/// Browser sessions and refresh families (one login on one device): list and end them.
struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "session", abstract: "Sign-ins: browser sessions and kubectl or application sessions (refresh families).",
                                                    subcommands: [List.self, Revoke.self])

    /// A local or directory person: (subject, username).
    static func person(_ rt: Runtime, _ raw: String) async throws -> (String, String) {
        let name = Usernames.canonical(raw)
        if let u = try await rt.storage.user(username: name) { return (u.id, u.username) }
        if let directory = rt.provider.directory, case .success(let i) = try await directory.lookup(username: name) { return (i.subject, i.username) }
        throw UserAdminError("no such person '\(raw)'")
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List live sessions. Without --user: every kubectl or application session (id, user, client, method, last refresh, end). With --user: that person's browser sessions and kubectl or application sessions (id, kind, client, started, last used, address, device).")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this person (local or directory), browser sessions included.") var user: String?
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let f = ISO8601DateFormatter()
                let now = rt.clock.now()
                guard let user else {
                    for fam in try await rt.storage.activeFamilies(userID: nil, now: now) {
                        print([fam.id, fam.grant.userID, fam.grant.clientID, fam.grant.authMethod, "last-refresh=\(f.string(from: fam.lastUsedAt))",
                               "ends=\(f.string(from: fam.expiresAt))"].joined(separator: "\t"))
                    }
                    return
                }
                let (subject, _) = try await SessionCommand.person(rt, user)
                print(["ID", "KIND", "CLIENT", "STARTED", "LAST USED", "ADDRESS", "DEVICE"].joined(separator: "\t"))
                for s in try await rt.login.liveSessions(userID: subject) {
                    print([s.sid, "browser", "portal", f.string(from: s.createdAt), f.string(from: s.lastSeenAt), s.address.isEmpty ? "-" : s.address,
                           DeviceName.describe(userAgent: s.userAgent)].joined(separator: "\t"))
                }
                for fam in try await rt.storage.activeFamilies(userID: subject, now: now) {
                    let kind = rt.provider.kubernetesClients.contains(fam.grant.clientID) ? "kubectl" : "app"
                    print([fam.id, kind, fam.grant.clientID, f.string(from: fam.createdAt), f.string(from: fam.lastUsedAt),
                           fam.address.isEmpty ? "-" : fam.address, fam.label.isEmpty ? DeviceName.describe(userAgent: fam.userAgent) : fam.label]
                        .joined(separator: "\t"))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a session by id (a browser session ends with everything started from it), or everything of a person with --user NAME --all.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The session id (from session list).") var id: String?
        @Option(help: "With --all: the person whose sessions all end.") var user: String?
        @Flag(help: "Every browser session and every kubectl or application session of --user.") var all = false

        func validate() throws {
            if all != (user != nil) { throw ValidationError("--all and --user go together") }
            if (id == nil) == (user == nil) { throw ValidationError("give a session id, or --user NAME --all") }
        }

        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let signout = Signout(provider: rt.provider)
                if let user {
                    let (subject, name) = try await SessionCommand.person(rt, user)
                    let ended = try await signout.endEverywhere(userID: subject, reason: "ended by an administrator")
                    await rt.provider.auditor.record("admin.user.signout", actor: "cli", subject: subject,
                                                     details: ["username": name, "sessions": String(ended.sessions), "families": String(ended.families)])
                    print("signed \(name) out everywhere: \(ended.sessions) browser session(s), \(ended.families) kubectl or application session(s)")
                    return
                }
                let id = id ?? ""
                if let s = try await rt.storage.session(sid: id), s.expiresAt > rt.clock.now() {
                    let ended = try await signout.endBrowserSession(s, scope: .all, reason: "ended by an administrator")
                    await rt.provider.auditor.record("admin.session.end", actor: "cli", subject: s.userID,
                                                     details: ["session": s.sid, "families": String(ended.families)])
                    print("ended browser session \(id) and \(ended.families) session(s) started from it")
                    return
                }
                guard let f = try await rt.storage.family(id: id), try await signout.endFamily(f, reason: "ended by an administrator") else {
                    throw UserAdminError("no live session '\(id)'")
                }
                await rt.provider.auditor.record("admin.session.revoke", actor: "cli", subject: f.grant.userID, clientID: f.grant.clientID,
                                                 details: ["family": id])
                print("revoked \(id)")
            }
        }
    }
}
