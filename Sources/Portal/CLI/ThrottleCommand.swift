import ArgumentParser
import Foundation
import IdP

/// `portal throttle list|clear`: see and clear sign-in throttles (the admin UI's Throttles tab).
struct ThrottleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "throttle", abstract: "Sign-in and client-authentication throttles.",
                                                    subcommands: [List.self, Clear.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counters with failures: key, what it counts, failures, delayed until.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                let now = rt.clock.now()
                let f = ISO8601DateFormatter()
                for s in try await rt.login.throttle.list(now: now) {
                    let (kind, _, _) = ThrottleKey.describe(s.key)
                    let until = s.lockedUntil.flatMap { $0 > now ? f.string(from: $0) : nil } ?? "-"
                    print([s.key, kind, "failures=\(s.failures)", "delayed-until=\(until)"].joined(separator: "\t"))
                }
            }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear one counter (KEY from `throttle list`), or every counter of an account or an address.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "A key from `portal throttle list`.") var key: String?
        @Option(help: "Every counter of this account (username, or client:ID).") var account: String?
        @Option(help: "Every counter of this client address.") var address: String?
        func run() async throws {
            guard key != nil || account != nil || address != nil else { throw ValidationError("name a KEY, --account or --address") }
            try await withCLIRuntime(options) { rt in
                let cleared = try await rt.login.throttle.clear(key: key, account: account.map { $0.hasPrefix("client:") ? $0 : Usernames.canonical($0) }, address: address, now: rt.clock.now())
                for k in cleared { await rt.provider.auditor.record("admin.throttle.clear", actor: "cli", subject: k) }
                print(cleared.isEmpty ? "nothing to clear" : "cleared \(cleared.count): \(cleared.joined(separator: ", "))")
            }
        }
    }
}
