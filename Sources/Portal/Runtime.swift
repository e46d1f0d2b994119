import Crypto
import Foundation
import IdP
import Logging
import Storage

/// Everything a running portal (or a CLI command) needs, wired once from the configuration.
struct Runtime: Sendable {
    let config: PortalConfig
    let storage: SQLStorage
    let clock: any Clock
    let random: any RandomSource
    let hasher: any PasswordHasher
    let keys: KeyManager
    let provider: Provider
    let login: LoginService
    let setup: SetupService
    let users: UserAdmin
    /// Key for CSRF tokens and other browser-bound MACs (shared by all replicas).
    let browserKey: SymmetricKey
    let sealer: KeySealer
    /// Clusters offered on the Kubernetes page, with their CA read once at start.
    let clusters: [ClusterSpec]
    /// PEM of the CA behind the portal's own TLS certificate (tls.ca_file), if configured.
    let issuerCAPEM: String?
    let logger: Logger
    /// SPNEGO logins; nil when `kerberos:` is not configured.
    let kerberos: KerberosAuthenticator?
    let credentials: CredentialService
    let credentialUsage: CredentialUsage
    /// The bearer token kube-apiserver must present to the TokenReview webhook (nil: webhook off).
    let webhookToken: String?
    /// Second factors: authenticator apps and recovery codes, and passkeys.
    let factors: SecondFactors
    let passkeys: Passkeys
    /// The directory, when `ldap:` is configured (its reachability is part of /readyz).
    var directory: LDAPAuthenticator? { provider.directory }

    static func open(config: PortalConfig, clock: any Clock = SystemClock(), random: any RandomSource = SystemRandom(),
                     hasher: (any PasswordHasher)? = nil, serving: Bool = false, logger: Logger) async throws -> Runtime {
        let storage = try await openStorage(config, now: clock.now(), serving: serving, logger: logger)
        do {
            return try await wire(config: config, storage: storage, clock: clock, random: random, hasher: hasher, serving: serving, logger: logger)
        } catch {
            // Close before the error propagates: SQLite connections must be closed explicitly.
            try? await storage.close()
            throw error
        }
    }

    private static func wire(config: PortalConfig, storage: SQLStorage, clock: any Clock, random: any RandomSource,
                             hasher: (any PasswordHasher)?, serving: Bool, logger: Logger) async throws -> Runtime {
        // The KDF salt is per installation and not secret; the first process to start chooses it.
        let salt = try await storage.namedSecret("kek-salt-v2", proposed: Base64URL.encode(random.bytes(16)))
        let sealer = try KeySealer(secret: try keyEncryptionKey(config), salt: Data(Base64URL.decode(salt) ?? []))
        let hasher = hasher ?? BcryptHasher(cost: UInt8(config.bcryptCost))

        var policy = config.signing
        policy.retainAfterRetire = max(config.tokens.idTokenTTL, config.tokens.accessTokenTTL) + 300
        // No key signs before every verifier can have it: JWKS max-age plus every replica's re-read interval.
        policy.minimumPublished = max(config.signing.publishAhead, KeyPolicy.jwksMaxAge + config.keyCheckInterval)
        let keys = KeyManager(store: storage, sealer: sealer, clock: clock, random: random, policy: policy, logger: logger)

        let successorKey = try await sharedSecret("refresh-successor-v1", storage: storage, sealer: sealer, random: random)
        let browserKey = try await sharedSecret("browser-mac-v1", storage: storage, sealer: sealer, random: random)

        var configured: [Client] = []
        let now = clock.now()
        if config.builtinKubernetesClient && !config.clients.contains(where: { $0.id == "kubernetes" }) {
            configured.append(ClientRegistry.builtinKubernetes(now: now))
        }
        for c in config.clients {
            var secretHash: String?
            if !c.isPublic {
                var secret = ""
                if let f = c.secretFile { secret = (try? String(contentsOfFile: f, encoding: .utf8)) ?? "" }
                if let e = c.secretEnv { secret = ProcessInfo.processInfo.environment[e] ?? "" }
                secret = secret.trimmingCharacters(in: .whitespacesAndNewlines)
                guard !secret.isEmpty else { throw RuntimeError("client '\(c.id)': its secret is empty") }
                guard secret.count >= Secrets.minClientSecretLength else {
                    throw RuntimeError("client '\(c.id)': its secret must be at least \(Secrets.minClientSecretLength) characters (use a generated one, e.g. openssl rand -base64 32)")
                }
                secretHash = Secrets.hashClientSecret(secret, random: random)
            }
            configured.append(Client(id: c.id, name: c.name, redirectURIs: c.redirectURIs, isPublic: c.isPublic,
                                     secretHash: secretHash, createdAt: now, postLogoutRedirectURIs: c.postLogoutRedirectURIs,
                                     backchannelLogoutURI: c.backchannelLogoutURI, introspectAll: c.introspectAll, grantTypes: c.grantTypes))
        }
        let clients = ClientRegistry(configured: configured, store: storage)

        let dummy = try await hasher.hash(random.token())
        // The server follows changes to credentials, robots and users (PostgreSQL LISTEN, or SQLite's change
        // counter) and keeps what they decide in memory between changes; the CLI reads every time.
        let cacheTTL = serving ? config.webhookCacheTTL : 0
        let changes: (any CredentialChanges)? = serving ? storage.credentialChanges(logger: logger) : nil
        let local = LocalAuthenticator(store: storage, hasher: hasher, dummyHash: dummy,
                                       identities: changes.map { (GenerationCache<Identity>(ttl: 60), $0) })
        var authenticators: [any Authenticator] = [local]
        if let ldap = config.ldap {
            // The first authenticator in the chain that accepts the password wins (README: "Directory logins").
            let directory = LDAPAuthenticator(config: ldap, maxCacheLifetime: config.tokens.idTokenTTL, clock: clock, logger: logger,
                                              localAccountExists: { name in try await storage.user(username: name) != nil })
            authenticators = ldap.precedence == .ldapFirst ? [directory, local] : [local, directory]
        }
        let kerberos = try makeKerberos(config, directories: authenticators, storage: storage, clock: clock, logger: logger)
        if let kerberos { authenticators.append(kerberos) }

        var tokenPolicy = config.tokens
        // PostgreSQL waits are bounded (acquire_timeout + 5 s of statements): a rotation may commit that long after it began.
        if config.usesPostgres { tokenPolicy.refreshGraceSlack = config.databaseAcquireTimeout + 5 }
        let provider = Provider(issuer: config.issuer, policy: tokenPolicy, store: storage, clients: clients, keys: keys,
                                authenticators: authenticators, successorKey: successorKey, clock: clock, random: random, logger: logger,
                                kubernetes: config.apiserver.mapping, kubernetesClients: config.kubernetesClientIDs, loginPolicy: config.login,
                                mfa: config.mfa, adminGroups: Set(config.adminGroups))
        let login = LoginService(store: storage, authenticators: authenticators, policy: config.login, tokens: config.tokens,
                                 clock: clock, random: random, logger: logger)
        let setup = SetupService(store: storage, hasher: hasher, passwords: config.passwords, linkLifetime: config.setupLinkLifetime,
                                 clock: clock, random: random, logger: logger)
        let users = UserAdmin(store: storage, hasher: hasher, passwords: config.passwords, clock: clock, random: random, logger: logger,
                              adminGroups: Set(config.adminGroups), signout: Signout(provider: provider))
        var clusters: [ClusterSpec] = []
        for c in config.clusters {
            var ca = c.caData
            if let f = c.caFile {
                guard let pem = try? String(contentsOfFile: f, encoding: .utf8) else { throw RuntimeError("cluster '\(c.name)': cannot read \(f)") }
                ca = pem
            }
            clusters.append(ClusterSpec(name: c.name, server: c.server, caPEM: ca, namespace: c.namespace, clientID: c.clientID))
        }
        var issuerCA: String?
        if let f = config.tls?.caFile {
            guard let pem = try? String(contentsOfFile: f, encoding: .utf8) else { throw RuntimeError("cannot read tls.ca_file \(f)") }
            issuerCA = pem
        }
        var credentialPolicy = config.credentials
        credentialPolicy.kubernetes = config.apiserver.mapping
        let usage = CredentialUsage()
        // Verified credentials in memory (bounded by webhook.cache_ttl) while changes can be followed.
        let credentials = CredentialService(store: storage, provider: provider, policy: credentialPolicy, usage: usage, clock: clock,
                                            random: random, logger: logger, cache: cacheTTL > 0 ? CredentialCache(ttl: cacheTTL) : nil,
                                            changes: cacheTTL > 0 ? changes : nil)
        let webhookToken = config.webhookBearerTokenFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let issuerURL = URL(string: config.issuer)
        let rpID = issuerURL?.host ?? "localhost"
        let origin = issuerURL.map { u in "\(u.scheme ?? "https")://\(u.host ?? rpID)" + (u.port.map { ":\($0)" } ?? "") } ?? config.issuer
        let factors = SecondFactors(store: storage, sealer: sealer, codes: HummingbirdTOTPCodes(), loginPolicy: config.login, clock: clock,
                                    random: random, issuerName: rpID, logger: logger)
        let passkeys = Passkeys(store: storage, relyingParty: WebAuthnRelyingParty(id: rpID, origin: origin), rpName: "Portal (\(rpID))",
                                clock: clock, random: random, logger: logger)
        return Runtime(config: config, storage: storage, clock: clock, random: random, hasher: hasher, keys: keys, provider: provider,
                       login: login, setup: setup, users: users, browserKey: browserKey, sealer: sealer, clusters: clusters,
                       issuerCAPEM: issuerCA, logger: logger, kerberos: kerberos, credentials: credentials, credentialUsage: usage,
                       webhookToken: webhookToken, factors: factors, passkeys: passkeys)
    }

    /// `serving`: the long-running server (SQLite checkpoints move to a background thread).
    static func openStorage(_ config: PortalConfig, now: Date, serving: Bool = false, logger: Logger) async throws -> SQLStorage {
        if config.usesPostgres, let url = config.databaseURL {
            let backend = try await PostgresBackend.open(.init(url: url, poolSize: config.databasePoolSize, caFile: config.databaseCAFile,
                                                               acquireTimeout: .milliseconds(Int64(config.databaseAcquireTimeout * 1000)),
                                                               operationTimeout: serving ? .seconds(5) : nil),
                                                         logger: logger)
            do { return try await SQLStorage.open(backend, now: now) } catch {
                try? await backend.close()
                throw error
            }
        }
        let path = config.sqlitePath
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let backend = try await SQLiteBackend.open(path: path, logger: logger, serving: serving)
        // The database holds password hashes and sealed keys: owner-only.
        chmod(path, 0o600)
        do { return try await SQLStorage.open(backend, now: now) } catch {
            try? await backend.close()
            throw error
        }
    }

    static func keyEncryptionKey(_ config: PortalConfig) throws -> Data? {
        if let v = ProcessInfo.processInfo.environment["PORTAL_KEY_ENCRYPTION_KEY"], !v.isEmpty {
            let trimmed = v.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.utf8.count >= KeySealer.minimumSecretLength else {
                throw RuntimeError("PORTAL_KEY_ENCRYPTION_KEY must be at least \(KeySealer.minimumSecretLength) characters (e.g. openssl rand -base64 32)")
            }
            return Data(trimmed.utf8)
        }
        if let f = config.keyEncryptionKeyFile {
            guard let d = FileManager.default.contents(atPath: f) else { throw RuntimeError("cannot read signing.encryption_key_file '\(f)'") }
            let trimmed = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.utf8.count >= KeySealer.minimumSecretLength else {
                throw RuntimeError("signing.encryption_key_file: the key-encryption key must be at least \(KeySealer.minimumSecretLength) characters")
            }
            return Data(trimmed.utf8)
        }
        return nil
    }

    static func sharedSecret(_ name: String, storage: SQLStorage, sealer: KeySealer, random: any RandomSource) async throws -> SymmetricKey {
        let proposed = try sealer.seal(Data(random.bytes(32)))
        let stored = try await storage.namedSecret(name, proposed: proposed)
        let value = try sealer.open(stored)
        // Stored before a key-encryption key existed (or under the older derivation): seal it now.
        // A concurrent replica doing the same wins or loses the swap; either way it is sealed.
        if sealer.needsReseal(stored) { _ = try await storage.replaceNamedSecret(name, old: stored, new: try sealer.seal(value)) }
        return SymmetricKey(data: value)
    }

    func close() async {
        try? await storage.close()
    }
}

struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
