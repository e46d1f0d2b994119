import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `kubectl portal …`: a kubectl credential plugin for the portal. kubectl runs `get-token` as an
/// exec plugin (client.authentication.k8s.io/v1); the plugin keeps the tokens in its own cache, so
/// the kubeconfig is never rewritten, and refreshes once however many kubectl processes ask.
@main
struct Plugin: AsyncParsableCommand {
    static let version = "1.0"
    static let platform: String = {
        #if os(Linux)
        let os = "linux"
        #else
        let os = "darwin"
        #endif
        #if arch(x86_64)
        return os + "/amd64"
        #else
        return os + "/arm64"
        #endif
    }()

    static let configuration = CommandConfiguration(
        commandName: "kubectl-portal", abstract: "Sign kubectl in through the portal (a kubectl credential plugin).",
        version: version, subcommands: [GetToken.self, Login.self, Logout.self, Status.self])

    static func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Every failure ends the same way: one line that says what to do, exit status 1.
    static func run(_ body: () async throws -> Void) async throws {
        do { try await body() } catch let e as PluginError {
            await HTTP.shutdown()
            say("kubectl-portal: " + e.description)
            throw ExitCode(1)
        }
        await HTTP.shutdown()
    }
}

struct Target: ParsableArguments {
    @Option(help: "The portal's issuer URL, e.g. https://portal.example.org.") var issuer: String
    @Option(name: .customLong("client-id"), help: "The OAuth client kubectl uses.") var clientID = "kubernetes"
    @Option(name: .customLong("certificate-authority"), help: "A PEM file of the CA that signed the portal's certificate (default: the system's).")
    var caFile: String?

    func validate() throws {
        guard let u = URL(string: issuer), let scheme = u.scheme, ["https", "http"].contains(scheme), u.host != nil else {
            throw ValidationError("--issuer must be the portal's URL, e.g. https://portal.example.org")
        }
    }

    var trimmedIssuer: String { issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer }
    var client: OIDCClient { OIDCClient(issuer: trimmedIssuer, clientID: clientID, caFile: caFile) }
    func cache() throws -> TokenCache { try TokenCache(issuer: trimmedIssuer, clientID: clientID) }
    var loginHint: String { "run: kubectl portal login --issuer \(trimmedIssuer)" + (clientID == "kubernetes" ? "" : " --client-id \(clientID)") }
}

/// Signs in with a browser on this machine when one can be opened, otherwise (or with `device`) with a code.
func signIn(_ client: OIDCClient, device: Bool) async throws -> CachedTokens {
    let endpoints = try await client.endpoints()
    if !device, let t = try await client.browserLogin(endpoints, open: openBrowser) { return t }
    return try await client.deviceLogin(endpoints)
}

/// `KUBECTL_PORTAL_BROWSER` (a command given the URL), else xdg-open/open where a display exists.
func openBrowser(_ url: String) -> Bool {
    let env = ProcessInfo.processInfo.environment
    var command: String?
    if let b = env["KUBECTL_PORTAL_BROWSER"], !b.isEmpty { command = b } else {
        #if os(macOS)
        command = "open"
        #else
        if env["DISPLAY"] != nil || env["WAYLAND_DISPLAY"] != nil { command = "xdg-open" }
        #endif
    }
    guard let command else { return false }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command + " \"$1\" >/dev/null 2>&1", "sh", url]
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

struct GetToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get-token", abstract: "Print an ExecCredential for kubectl (refreshing, or signing in, when needed).")
    @OptionGroup var target: Target
    @Flag(help: "Sign in with a code on another device instead of a browser here.") var device = false

    func run() async throws {
        try await Plugin.run {
            let info = ProcessInfo.processInfo.environment["KUBERNETES_EXEC_INFO"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let interactive = ((info?["spec"] as? [String: Any])?["interactive"] as? Bool) ?? (isatty(STDERR_FILENO) == 1)
            let apiVersion = (info?["apiVersion"] as? String) ?? "client.authentication.k8s.io/v1"
            let cache = try target.cache()
            let tokens: CachedTokens = try await cache.locked {
                let now = Date().timeIntervalSince1970
                if let t = cache.read(), t.expiry - now > 10 { return t }
                let client = target.client
                if let t = cache.read() {
                    switch try await client.refresh(t, endpoints: try await client.endpoints()) {
                    case .ok(let fresh):
                        try cache.write(fresh)
                        return fresh
                    case .ended(let why):
                        cache.remove()
                        guard interactive else { throw PluginError("your portal session has ended (\(why)); \(target.loginHint)") }
                    }
                } else if !interactive {
                    throw PluginError("not signed in to \(target.trimmedIssuer); \(target.loginHint)")
                }
                let fresh = try await signIn(client, device: device)
                try cache.write(fresh)
                return fresh
            }
            let expiry = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: tokens.expiry))
            var status = ["token": tokens.idToken, "expirationTimestamp": expiry]
            _ = status.removeValue(forKey: "")
            let credential: [String: Any] = ["kind": "ExecCredential", "apiVersion": apiVersion, "spec": ["interactive": interactive], "status": status]
            let data = try JSONSerialization.data(withJSONObject: credential, options: [.sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sign in (a browser on this machine, or a code to enter elsewhere).")
    @OptionGroup var target: Target
    @Flag(help: "Sign in with a code on another device (no browser here: SSH, containers, CI runners).") var device = false

    func run() async throws {
        try await Plugin.run {
            let cache = try target.cache()
            let t = try await cache.locked {
                let t = try await signIn(target.client, device: device)
                try cache.write(t)
                return t
            }
            let who = OIDCClient.claims(t.idToken)["preferred_username"] as? String ?? "you"
            Plugin.say("Signed in to \(target.trimmedIssuer) as \(who).")
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sign out: the portal revokes this session, and the cache is removed.")
    @OptionGroup var target: Target

    func run() async throws {
        try await Plugin.run {
            let cache = try target.cache()
            try await cache.locked {
                guard let t = cache.read() else { Plugin.say("Not signed in to \(target.trimmedIssuer)."); return }
                let client = target.client
                try await client.revoke(t, endpoints: try await client.endpoints())
                cache.remove()
                Plugin.say("Signed out of \(target.trimmedIssuer): the session is revoked.")
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Who is signed in, with which groups, and until when.")
    @OptionGroup var target: Target

    func run() async throws {
        try await Plugin.run {
            guard let t = try target.cache().read() else { throw PluginError("not signed in to \(target.trimmedIssuer); \(target.loginHint)") }
            let c = OIDCClient.claims(t.idToken)
            let f = ISO8601DateFormatter()
            print("issuer:   \(t.issuer)")
            print("user:     \(c["preferred_username"] as? String ?? "?") (subject \(c["sub"] as? String ?? "?"))")
            print("groups:   \((c["groups"] as? [String])?.joined(separator: ", ") ?? "none")")
            print("token:    valid until \(f.string(from: Date(timeIntervalSince1970: t.expiry)))")
            if t.refreshExpiry > 0 {
                print("session:  ends \(f.string(from: Date(timeIntervalSince1970: t.refreshExpiry))) unless kubectl uses it before (each use extends it)")
            }
        }
    }
}
