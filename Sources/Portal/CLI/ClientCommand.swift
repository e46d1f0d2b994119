import ArgumentParser
import Foundation
import IdP

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "client", abstract: "Manage OAuth clients stored in the database.",
                                                    subcommands: [Add.self, List.self, Delete.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a client: public (PKCE) or with a secret read from standard input.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The client_id: letters, digits, '-', '_', '.', ':' (at most 128).") var id: String
        @Option(name: .customLong("redirect-uri"), help: "An exact redirect URI (repeatable).") var redirectURIs: [String] = []
        @Flag(name: .customLong("public"), help: "A public client: no secret, PKCE (S256) required.") var isPublic = false
        @Flag(name: .customLong("secret-stdin"), help: "Read the client secret (at least 32 characters) from standard input.") var secretStdin = false
        @Option(help: "Shown on the sign-in page (default: the id).") var name: String?
        @Option(name: .customLong("post-logout-redirect-uri"), help: "Where RP-initiated logout may return to, matched exactly (repeatable).")
        var postLogoutRedirectURIs: [String] = []
        @Option(name: .customLong("backchannel-logout-uri"), help: "Where back-channel logout tokens are POSTed.") var backchannelLogoutURI: String?
        @Flag(name: .customLong("introspect-all-clients"), help: "May introspect tokens issued to other clients (a resource server).")
        var introspectAll = false
        @Flag(name: .customLong("device-grant"), help: "May use the device authorization grant (RFC 8628: sign in on another device).")
        var deviceGrant = false

        func validate() throws {
            guard isPublic != secretStdin else { throw ValidationError("choose exactly one of --public and --secret-stdin") }
            guard !redirectURIs.isEmpty else { throw ValidationError("at least one --redirect-uri is required") }
            for u in redirectURIs { if let why = ClientRegistry.redirectURIProblem(u) { throw ValidationError("redirect URI '\(u)': \(why)") } }
            for u in postLogoutRedirectURIs + [backchannelLogoutURI].compactMap({ $0 }) {
                if let why = ClientRegistry.redirectURIProblem(u) { throw ValidationError("URI '\(u)': \(why)") }
            }
            guard !id.isEmpty, id.count <= 128, id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }) else {
                throw ValidationError("client id: letters, digits, '-', '_', '.', ':' (at most 128)")
            }
        }

        func run() async throws {
            var secretHash: String?
            if secretStdin {
                let secret = try readSecretFromStdin()
                guard secret.count >= Secrets.minClientSecretLength else { throw ValidationError("the client secret must be at least 32 characters (use a generated one, e.g. openssl rand -base64 32)") }
                secretHash = Secrets.hashClientSecret(secret, random: SystemRandom())
            }
            try await withCLIRuntime(options) { rt in
                if rt.provider.clients.isConfigured(id) { throw UserAdminError("client '\(id)' is declared in the configuration file") }
                let client = Client(id: id, name: name ?? id, redirectURIs: redirectURIs, isPublic: isPublic, secretHash: secretHash,
                                    createdAt: rt.clock.now(), postLogoutRedirectURIs: postLogoutRedirectURIs,
                                    backchannelLogoutURI: backchannelLogoutURI ?? "", introspectAll: introspectAll,
                                    grantTypes: Client.defaultGrantTypes + (deviceGrant ? [Client.deviceCodeGrant] : []))
                do { try await rt.storage.createClient(client) } catch let e as StorageError where e.isConflict {
                    throw UserAdminError("client '\(id)' already exists")
                }
                await rt.provider.auditor.record("admin.client.add", actor: "cli", subject: id, details: ["public": "\(isPublic)"])
                print("created \(isPublic ? "public" : "confidential") client \(id)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients (configured and stored).")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                for c in try await rt.provider.clients.all() {
                    print([c.id, c.isPublic ? "public" : "confidential", c.redirectURIs.joined(separator: " ")].joined(separator: "\t"))
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a stored client.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The client_id.") var id: String
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                guard try await rt.storage.deleteClient(id: id) else { throw UserAdminError("no stored client '\(id)'") }
                await rt.provider.auditor.record("admin.client.delete", actor: "cli", subject: id)
                print("deleted client \(id)")
            }
        }
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Signing keys.", subcommands: [Rotate.self, List.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate the signing key: routinely (the published next key signs once verifiers can have it) or, with --emergency, at once.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "A suspected compromise: a new key signs now and every other key leaves JWKS at once (verifiers may refuse tokens for up to a minute).")
        var emergency = false
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.keys.maintain()
                let r = try await rt.keys.rotate(emergency ? .emergency : .routine)
                let details: [String: String] = ["kind": emergency ? "emergency" : "routine", "signs_at": String(Int(r.signsAt.timeIntervalSince1970))]
                await rt.provider.auditor.record("admin.keys.rotate", actor: "cli", subject: r.kid, details: details)
                print(KeysCommand.explain(r, now: rt.clock.now()))
                for s in await rt.keys.status() { print("\(s.kid)\t\(s.algorithm.rawValue)\t\(s.state)") }
            }
        }
    }

    /// The result of a rotation in words (CLI and admin UI).
    static func explain(_ r: KeyManager.RotationResult, now: Date) -> String {
        let f = ISO8601DateFormatter()
        let kid: String = r.kid
        if !r.withdrawn.isEmpty {
            let count: Int = r.withdrawn.count
            let maxAge: Int = Int(KeyPolicy.jwksMaxAge)
            return "EMERGENCY rotation: key \(kid) signs now; \(count) earlier key(s) left JWKS (running servers switch within signing.check_interval), so tokens they signed no longer verify. Verifiers that fetched JWKS in the last \(maxAge) s may refuse new tokens until they fetch it again; kubectl users may need to log in again."
        }
        if r.signsAt <= now { return "key \(kid) signs now (it was published long enough ago); a new next key is published" }
        let when: String = f.string(from: r.signsAt)
        let seconds: Int = Int(r.signsAt.timeIntervalSince(now))
        return "key \(kid) will sign at \(when) (\(seconds) s from now), once every verifier can have it; the current key signs until then"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List signing keys and their state.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            try await withCLIRuntime(options) { rt in
                try await rt.keys.reload()
                let f = ISO8601DateFormatter()
                for s in await rt.keys.status() {
                    print([s.kid, s.algorithm.rawValue, s.state, "activates=\(f.string(from: s.activatesAt))",
                           s.expiresAt.map { "expires=\(f.string(from: $0))" } ?? "", s.encrypted ? "encrypted" : "UNENCRYPTED"].joined(separator: "\t"))
                }
            }
        }
    }
}
