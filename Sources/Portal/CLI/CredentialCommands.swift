import ArgumentParser
import Foundation
import IdP

struct RobotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "robot", abstract: "Manage robot accounts.",
                                                    subcommands: [Add.self, List.self, Disable.self, Enable.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a robot owned by a team.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The robot's name; it signs in as robot:NAME (oidc:robot:NAME in Kubernetes with the default prefix).") var name: String
        @Option(help: "The owning team (a group name).") var team: String
        @Option(name: .customLong("group"), help: "A group (repeatable).") var groups: [String] = []
        @Option(help: "What the robot is for.") var description: String = ""
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let r = try await RobotAdmin(runtime: rt).add(name: name, team: team, groups: groups.joined(separator: ","),
                                                              description: description, actor: "cli")
                print("created robot \(r.username) (id \(r.id))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List robots (never their secrets).")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                for r in try await rt.storage.listRobots() {
                    print([r.username, r.id, r.team, r.groups.joined(separator: ","), r.disabled ? "disabled" : "active"].joined(separator: "\t"))
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a robot: its credentials stop authenticating (kept, for enable).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The robot's name (without robot:).") var name: String
        func run() async throws {
            try await withRobot(named: name, options) { admin, r in
                try await admin.setDisabled(r.id, disabled: true, actor: "cli")
                print("disabled \(r.username)")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled robot: its live credentials work again.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The robot's name (without robot:).") var name: String
        func run() async throws {
            try await withRobot(named: name, options) { admin, r in
                try await admin.setDisabled(r.id, disabled: false, actor: "cli")
                print("enabled \(r.username)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a robot and revoke its credentials.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The robot's name (without robot:).") var name: String
        func run() async throws {
            try await withRobot(named: name, options) { admin, r in
                try await admin.delete(r.id, actor: "cli")
                print("deleted \(r.username) and revoked its credentials")
            }
        }
    }
}

/// The robot called `name` and the admin actions on it, for one CLI action; a clear error when there is none.
func withRobot(named name: String, _ options: ConfigOption, _ body: (RobotAdmin, Robot) async throws -> Void) async throws {
    try await withCLIRuntime(options) { rt in
        guard let r = try await rt.storage.robot(name: name) else { throw UserAdminError("no robot '\(name)'") }
        try await body(RobotAdmin(runtime: rt), r)
    }
}

struct CredentialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credential", abstract: "Manage application credentials.",
                                                    subcommands: [Create.self, List.self, Rotate.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a credential for a robot or a local user; prints the token once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The robot that owns it (give --robot or --user).") var robot: String?
        @Option(help: "The enabled local user who owns it (give --robot or --user).") var user: String?
        @Option(help: "A name to recognise it by in lists.") var name: String
        @Option(help: "Lifetime, e.g. 30d (at most the configured maximum).") var expires: String = "30d"
        @Option(name: .customLong("group"), help: "Restrict to this group (repeatable).") var groups: [String] = []
        func validate() throws {
            guard (robot == nil) != (user == nil) else { throw ValidationError("give exactly one of --robot and --user") }
            guard DurationParser.seconds(expires) != nil else { throw ValidationError("--expires: a duration such as 30d") }
        }
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let owner: CredentialService.Owner
                if let robot {
                    guard let r = try await rt.storage.robot(name: robot) else { throw UserAdminError("no robot '\(robot)'") }
                    owner = .robot(r)
                } else {
                    guard let u = try await rt.storage.user(username: Usernames.canonical(user ?? "")), !u.disabled else {
                        throw UserAdminError("no enabled local user '\(user ?? "")'")
                    }
                    owner = .user(Identity(user: u), method: "password")
                }
                do {
                    let (c, token) = try await rt.credentials.create(owner: owner, name: name, description: "", lifetime: DurationParser.seconds(expires)!,
                                                                     groups: groups.isEmpty ? nil : groups, actor: "cli")
                    FileHandle.standardError.write(Data("created credential \(c.id), expires \(ISO8601DateFormatter().string(from: c.expiresAt)); the token (shown once):\n".utf8))
                    print(token)
                } catch let e as CredentialError { throw UserAdminError(e.description) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List credentials: id, name, owner, expiry, last use, state (never secrets).")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Include revoked credentials.") var all = false
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let f = ISO8601DateFormatter()
                for c in try await rt.storage.listCredentials(ownerID: nil, includeRevoked: all) {
                    print([c.id, c.name, c.ownerKind.rawValue, c.ownerID, "expires=\(f.string(from: c.expiresAt))",
                           c.lastUsedAt.map { "last-used=\(f.string(from: $0))" } ?? "never-used", c.revokedAt == nil ? "active" : "revoked"].joined(separator: "\t"))
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a credential a new secret; prints the new token once.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The credential id (from credential list).") var id: String
        @Option(help: "How long the old secret keeps working, e.g. 1h, 1d, or 0s to end it now.") var overlap: String = "1h"
        func run() async throws {
            guard let seconds = DurationParser.seconds(overlap) else { throw UserAdminError("--overlap: not a duration: \(overlap)") }
            try await withCLIRuntime(options) { rt in
                do {
                    let (c, token) = try await rt.credentials.rotate(id: id, overlap: seconds, actor: "cli")
                    let old = seconds > 0 ? "the old secret works until \(AdminPages.date(min(rt.clock.now() + seconds, c.expiresAt)))"
                        : "the old secret no longer works"
                    FileHandle.standardError.write(Data("rotated \(id); \(old); the new token (shown once):\n".utf8))
                    print(token)
                } catch let e as CredentialError { throw UserAdminError(e.description) }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a credential: it stops authenticating at once.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The credential id (from credential list).") var id: String
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                guard try await rt.credentials.revoke(id: id, actor: "cli") else { throw UserAdminError("no live credential '\(id)'") }
                print("revoked \(id)")
            }
        }
    }
}
