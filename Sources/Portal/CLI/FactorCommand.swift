import ArgumentParser
import Foundation
import IdP

extension UserCommand {
    /// The CLI twin of the person page's "Reset second factors".
    struct ResetFactors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-factors",
            abstract: "Remove every second factor (passkeys, authenticator apps) and recovery code of a person, and sign them out everywhere.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The person's login name: a local user, or a person in the directory.") var name: String

        func run() async throws {
            try await withCLIRuntime(options) { rt in
                // The same lookup as the person page: a local user, else a person in the directory.
                let (subject, username): (String, String)
                switch try await PersonPage(runtime: rt).find(name) {
                case .local(let u): (subject, username) = (u.id, u.username)
                case .directory(let i): (subject, username) = (i.subject, i.username)
                case nil: throw ValidationError("no local user, and no active person in the directory, is called '\(name)'")
                }
                let removed = try await rt.factors.reset(userID: subject, username: username, by: "cli", remoteAddress: "")
                _ = try await Signout(provider: rt.provider).endEverywhere(userID: subject, reason: "second factors reset from the CLI")
                print("Removed \(removed) factor\(removed == 1 ? "" : "s") of \(username); their sessions ended.")
            }
        }
    }
}
