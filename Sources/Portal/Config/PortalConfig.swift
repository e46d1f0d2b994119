import Foundation
import IdP

/// The whole configuration. Every key is declared in `ConfigSchema` and documented (generated) in docs/configuration.md and
/// `deploy/portal.example.yaml`; defaults make `portal serve` work with no file at all.
struct PortalConfig: Sendable {
    struct TLS: Sendable {
        var certificateFile: String
        var keyFile: String
        /// CA that signed the portal's certificate, when private: handed to kubectl
        /// (idp-certificate-authority-data) and named in the API server setup (--oidc-ca-file).
        var caFile: String?
    }
    struct Cluster: Sendable {
        var name: String
        var server: String
        var caFile: String?
        var caData: String?
        var namespace: String?
        var clientID: String
    }
    struct APIServer: Sendable {
        var usernameClaim = "preferred_username"
        var usernamePrefix = "oidc:"
        var groupsClaim = "groups"
        var groupsPrefix = "oidc:"
        var mapping: KubernetesMapping {
            KubernetesMapping(usernameClaim: usernameClaim, usernamePrefix: usernamePrefix, groupsPrefix: groupsPrefix)
        }
    }
    struct ClientConfig: Sendable {
        var id: String
        var name: String
        var redirectURIs: [String]
        var isPublic: Bool
        var secretFile: String?
        var secretEnv: String?
        var postLogoutRedirectURIs: [String] = []
        var backchannelLogoutURI = ""
        var introspectAll = false
        var grantTypes = Client.defaultGrantTypes
    }
    /// What `clients[].grant_types` may name.
    static let clientGrantTypes = ["authorization_code", "refresh_token", Client.deviceCodeGrant]

    var issuer = "http://localhost:8080"
    var listenHost = "127.0.0.1"
    var listenPort = 8080
    var dataDir = "./portal-data"
    var databaseURL: String?
    var databasePoolSize = 10
    var databaseCAFile: String?
    /// The longest a request waits for a database connection before answering 503.
    var databaseAcquireTimeout: TimeInterval = 3
    var tls: TLS?
    var logLevel = "info"
    /// auto: readable lines on a terminal, JSON otherwise; json; text.
    var logFormat = "auto"
    var tokens = TokenPolicy()
    var signing = KeyPolicy()
    var keyEncryptionKeyFile: String?
    /// How often each replica re-reads the signing keys (and rotates when due).
    var keyCheckInterval: TimeInterval = 30
    var bcryptCost = 12
    var passwords = PasswordPolicy()
    var login = LoginPolicy()
    var setupLinkLifetime: TimeInterval = 3600
    var clients: [ClientConfig] = []
    var builtinKubernetesClient = true
    var clusters: [Cluster] = []
    var apiserver = APIServer()
    var credentials = CredentialPolicy()
    /// Members of these groups are administrators (besides users with the admin flag).
    var adminGroups: [String] = []
    var mfa = MFAPolicy()
    /// File with the bearer token kube-apiserver presents to the TokenReview webhook; no file, no webhook.
    var webhookBearerTokenFile: String?
    /// Audiences application credentials are valid for (empty: any).
    var webhookAudiences: [String] = []
    var webhookCacheTTL: TimeInterval = 10
    /// Directory logins (the `ldap:` section); nil when not configured.
    var ldap: LDAPConfiguration?
    /// SPNEGO logins with Kerberos tickets (the `kerberos:` section); nil when not configured.
    var kerberos: KerberosConfiguration?
    /// Where the static assets (CSS, icons, copy-button script) are.
    var publicDir: String?
    /// Set when the issuer or the listener is not loopback-only and TLS is off.
    var maxBodyBytes = 64 * 1024
    /// Reverse proxies whose X-Forwarded-For / Forwarded headers name the client (`server.trusted_proxies`).
    var trustedProxies = CIDRSet(ranges: [])
    /// The one header the trusted proxies set (the other is never read).
    var forwardedHeader = ClientAddress.Header.xForwardedFor
    /// From connection open: the request headers must be complete within this (slow clients are dropped).
    var headerTimeout: TimeInterval = 10
    /// Once the headers are in: the rest of the request must arrive within this.
    var bodyTimeout: TimeInterval = 30
    /// Between requests on a kept-alive connection: the next request's headers must be complete within this.
    var idleTimeout: TimeInterval = 60
    /// Swift concurrency's jobs on the NIO event loops (see EventLoopExecutor).
    var tasksOnEventLoops = true
    /// `/metrics` needs `Authorization: Bearer <content of this file>`.
    var metricsBearerTokenFile: String?
    /// `/metrics` open to anyone (without a token file it answers loopback peers only).
    var metricsPublic = false

    var sqlitePath: String {
        if let url = databaseURL, url.hasPrefix("sqlite://") { return String(url.dropFirst("sqlite://".count)) }
        return (dataDir as NSString).appendingPathComponent("portal.sqlite")
    }

    /// The audiences kube-apiserver trusts: the clusters' clients (`kubernetes` when none is declared).
    var kubernetesClientIDs: Set<String> {
        let ids = Set(clusters.map(\.clientID))
        return ids.isEmpty ? ["kubernetes"] : ids.union(["kubernetes"])
    }

    /// Settings that work but weaken a guarantee: `check-config` prints them, `serve` logs them.
    var warnings: [String] {
        apiserver.mapping.emptyPrefixWarnings
    }

    var secureCookies: Bool { issuer.hasPrefix("https://") }

    /// The database for logs and messages, without its password.
    var databaseDescription: String {
        guard usesPostgres, let url = databaseURL, var c = URLComponents(string: url) else { return "sqlite:" + sqlitePath }
        if c.password != nil { c.password = "REDACTED" }
        return c.string ?? "postgres"
    }

    var usesPostgres: Bool { databaseURL.map { $0.hasPrefix("postgres://") || $0.hasPrefix("postgresql://") } ?? false }
}

struct ConfigProblem: CustomStringConvertible, Sendable {
    var location: String
    var message: String
    var description: String { "\(location): \(message)" }
}
