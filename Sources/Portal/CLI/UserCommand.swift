import ArgumentParser
import Foundation
import IdP

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage local users.",
                                                    subcommands: [Add.self, Disable.self, Enable.self, Delete.self, Promote.self, Demote.self, SetPassword.self,
                                                                  SetGroups.self, List.self, ResetFactors.self])

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a local user an administrator.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.setAdmin(name, isAdmin: true, actor: "cli")
                print("\(name) is an administrator")
            }
        }
    }

    struct Demote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the administrator flag from a local user (not the last active one, unless --force).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        @Flag(help: "Even if no other local administrator remains (directory administrators through admin_groups do).") var force = false
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.setAdmin(name, isAdmin: false, actor: "cli", force: force)
                print("\(name) is no longer an administrator")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a local user: the password from standard input (--password-stdin), or none (--no-password, Kerberos only).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Login name.") var name: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.") var passwordStdin = false
        @Flag(name: .customLong("no-password"), help: "No password at all: the person signs in with Kerberos only.") var noPassword = false
        @Option(help: "Email address (marked verified: it is an administrator who typed it).") var email: String = ""
        @Option(name: .customLong("name"), help: "Display name.") var displayName: String = ""
        @Option(name: .customLong("group"), help: "A group (repeatable).") var groups: [String] = []
        @Flag(help: "Make the user an administrator (the admin UI at /admin).") var admin = false

        func run() async throws {
            guard passwordStdin != noPassword else {
                throw ValidationError("pass --password-stdin and the password on standard input (never on the command line), "
                    + "or --no-password for an account that signs in with Kerberos only")
            }
            let password = noPassword ? nil : try readSecretFromStdin()
            try await withCLIRuntime(options) { rt in
                let u = try await rt.users.add(username: name, password: password, email: email, displayName: displayName,
                                               groups: groups, isAdmin: admin, actor: "cli")
                print("created user \(u.username) (subject \(u.id))")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user and end their sessions and refresh tokens.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        @Flag(help: "Even if it is the last active local administrator (directory administrators through admin_groups remain).") var force = false
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.setDisabled(name, disabled: true, actor: "cli", force: force)
                print("disabled \(name)")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.setDisabled(name, disabled: false, actor: "cli")
                print("enabled \(name)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user and revoke everything they hold.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        @Flag(help: "Even if it is the last active local administrator (directory administrators through admin_groups remain).") var force = false
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.delete(name, actor: "cli", force: force)
                print("deleted \(name)")
            }
        }
    }

    struct SetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-password", abstract: "Set a user's password from standard input.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        @Flag(name: .customLong("password-stdin")) var passwordStdin = false
        func run() async throws {
            guard passwordStdin else { throw ValidationError("pass --password-stdin and the password on standard input") }
            let password = try readSecretFromStdin()
            try await withCLIRuntime(options) { rt in
                try await rt.users.setPassword(name, password: password, actor: "cli")
                print("password set for \(name); their sessions and refresh tokens were revoked")
            }
        }
    }

    struct SetGroups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-groups", abstract: "Replace a user's groups.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The local user's login name (any spelling: case and surrounding spaces do not matter).") var name: String
        @Option(name: .customLong("group"), help: "A group (repeatable); none clears them.") var groups: [String] = []
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.users.setGroups(name, groups: groups, actor: "cli")
                print("groups of \(name): \(groups.joined(separator: ", "))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                for u in try await rt.storage.listUsers() {
                    let flags = [u.isAdmin ? "admin" : nil, u.disabled ? "disabled" : nil].compactMap { $0 }.joined(separator: ",")
                    print([u.username, u.id, u.email, u.groups.joined(separator: ","), flags].joined(separator: "\t"))
                }
            }
        }
    }
}
