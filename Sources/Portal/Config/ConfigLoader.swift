import Foundation
import IdP
import Yams

/// Reads the YAML file and the environment into a `PortalConfig`, collecting every
/// problem (with file:line:column and the key path) instead of stopping at the first.
/// The keys, their types and ranges are those `ConfigSchema` declares.
struct ConfigLoader {
    let file: String?
    let env: [String: String]
    private(set) var problems: [ConfigProblem] = []
    /// The declared keys the readers asked for (see `ConfigReader.consulted`).
    private(set) var consulted: Set<String> = []

    init(file: String?, env: [String: String] = ProcessInfo.processInfo.environment) {
        self.file = file ?? env["PORTAL_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        self.env = env
    }

    mutating func load() -> PortalConfig {
        var config = PortalConfig()
        var reader = ConfigReader(file: file, env: env)
        defer { problems = reader.problems; consulted = reader.consulted }
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                reader.append([.init(location: file, message: "cannot read the file")])
                return config
            }
            do {
                if let node = try Yams.compose(yaml: text) {
                    reader.read(node, into: &config)
                }
            } catch {
                reader.append([.init(location: file, message: "not valid YAML: \(error)")])
                return config
            }
        }
        applyEnvironment(&config, &reader)
        reader.append(ConfigReader.finishKerberos(&config, file: file))
        reader.append(validate(config))
        return config
    }

    private func applyEnvironment(_ c: inout PortalConfig, _ reader: inout ConfigReader) {
        if let v = env["PORTAL_ISSUER"], !v.isEmpty { c.issuer = v }
        if let v = env["PORTAL_LISTEN"], !v.isEmpty { reader.setListen(v, &c, node: nil) }
        if let v = env["PORTAL_DATA_DIR"], !v.isEmpty { c.dataDir = v }
        if let v = env["PORTAL_DATABASE_URL"], !v.isEmpty { c.databaseURL = v }
        if let v = env["PORTAL_LOG_LEVEL"], !v.isEmpty { c.logLevel = v }
        if let v = env["PORTAL_LOG_FORMAT"], !v.isEmpty { c.logFormat = v }
    }
}

extension ConfigReader {
    mutating func read(_ root: Node, into c: inout PortalConfig) {
        guard let top = section(root, "") else { return }
        if let v = string(top["issuer"], "issuer") { c.issuer = v }
        if let v = string(top["listen"], "listen") { setListen(v, &c, node: top["listen"]) }
        if let v = string(top["data_dir"], "data_dir") { c.dataDir = v }
        if let m = section(top["database"], "database") {
            if let v = duration(m["acquire_timeout"], "database.acquire_timeout") { c.databaseAcquireTimeout = v }
            if let v = string(m["url"], "database.url") { c.databaseURL = v }
            if let v = int(m["pool_size"], "database.pool_size") { c.databasePoolSize = v }
            if let v = string(m["ca_file"], "database.ca_file") { c.databaseCAFile = v }
        }
        if let n = top["tls"], let m = section(n, "tls") {
            let cert = string(m["certificate_file"], "tls.certificate_file")
            let key = string(m["key_file"], "tls.key_file")
            let ca = string(m["ca_file"], "tls.ca_file")
            if let cert, let key { c.tls = .init(certificateFile: cert, keyFile: key, caFile: ca) } else {
                problem(n, "tls", "both certificate_file and key_file are required")
            }
        }
        if let m = section(top["log"], "log") {
            if let v = choice(m["level"], "log.level") { c.logLevel = v }
            if let v = choice(m["format"], "log.format") { c.logFormat = v }
        }
        if let m = section(top["tokens"], "tokens") {
            if let v = duration(m["id_token_lifetime"], "tokens.id_token_lifetime") { c.tokens.idTokenTTL = v }
            if let v = duration(m["access_token_lifetime"], "tokens.access_token_lifetime") { c.tokens.accessTokenTTL = v }
            if let v = duration(m["code_lifetime"], "tokens.code_lifetime") { c.tokens.codeTTL = v }
            if let v = duration(m["refresh_idle_timeout"], "tokens.refresh_idle_timeout") { c.tokens.refreshIdleTimeout = v }
            if let v = duration(m["refresh_absolute_lifetime"], "tokens.refresh_absolute_lifetime") { c.tokens.refreshAbsoluteLifetime = v }
            if let v = duration(m["refresh_grace_window"], "tokens.refresh_grace_window") { c.tokens.refreshGraceWindow = v }
            if let v = duration(m["session_lifetime"], "tokens.session_lifetime") { c.tokens.sessionTTL = v }
            if let v = duration(m["session_idle_timeout"], "tokens.session_idle_timeout") { c.tokens.sessionIdleTimeout = v }
            if let v = duration(m["device_code_lifetime"], "tokens.device_code_lifetime") { c.tokens.deviceCodeTTL = v }
        }
        if let m = section(top["signing"], "signing") {
            if let v = duration(m["check_interval"], "signing.check_interval") { c.keyCheckInterval = v }
            if let v = choice(m["algorithm"], "signing.algorithm", as: SigningAlgorithm.self) { c.signing.algorithm = v }
            if let v = duration(m["rotation_period"], "signing.rotation_period") { c.signing.rotationPeriod = v }
            if let v = duration(m["publish_ahead"], "signing.publish_ahead") { c.signing.publishAhead = v }
            if let v = string(m["encryption_key_file"], "signing.encryption_key_file") { c.keyEncryptionKeyFile = v }
        }
        if let m = section(top["passwords"], "passwords") {
            if let v = int(m["bcrypt_cost"], "passwords.bcrypt_cost") { c.bcryptCost = v }
            if let v = int(m["min_length"], "passwords.min_length") { c.passwords.minLength = v }
        }
        if let m = section(top["server"], "server") {
            if let v = choice(m["forwarded_header"], "server.forwarded_header", as: ClientAddress.Header.self) { c.forwardedHeader = v }
            if let v = strings(m["trusted_proxies"], "server.trusted_proxies") {
                let (set, invalid) = CIDRSet.parse(v)
                if invalid.isEmpty { c.trustedProxies = set } else {
                    problem(m["trusted_proxies"], "server.trusted_proxies", "not an address or CIDR range: \(invalid.joined(separator: ", "))")
                }
            }
            if let v = duration(m["header_timeout"], "server.header_timeout") { c.headerTimeout = v }
            if let v = duration(m["body_timeout"], "server.body_timeout") { c.bodyTimeout = v }
            if let v = duration(m["idle_timeout"], "server.idle_timeout") { c.idleTimeout = v }
            if let v = bool(m["tasks_on_event_loops"], "server.tasks_on_event_loops") { c.tasksOnEventLoops = v }
        }
        if let m = section(top["metrics"], "metrics") {
            if let v = string(m["bearer_token_file"], "metrics.bearer_token_file") { c.metricsBearerTokenFile = v }
            if let v = bool(m["public"], "metrics.public") { c.metricsPublic = v }
        }
        if let m = section(top["login"], "login") {
            if let v = int(m["max_failures_unfamiliar"], "login.max_failures_unfamiliar") { c.login.maxFailuresUnfamiliar = v }
            if let v = duration(m["familiar_for"], "login.familiar_for") { c.login.familiarFor = v }
            if let v = int(m["max_failures_per_user"], "login.max_failures_per_user") { c.login.maxFailuresPerUser = v }
            if let v = int(m["max_failures_per_address"], "login.max_failures_per_address") { c.login.maxFailuresPerAddress = v }
            if let v = duration(m["failure_window"], "login.failure_window") { c.login.failureWindow = v }
            if let v = duration(m["lockout"], "login.lockout") { c.login.lockout = v }
        }
        if let m = section(top["setup"], "setup") {
            if let v = duration(m["link_lifetime"], "setup.link_lifetime") { c.setupLinkLifetime = v }
        }
        if let m = section(top["ui"], "ui") {
            if let v = string(m["public_dir"], "ui.public_dir") { c.publicDir = v }
        }
        if let m = section(top["credentials"], "credentials") {
            if let v = duration(m["max_user_lifetime"], "credentials.max_user_lifetime") { c.credentials.maxUserLifetime = v }
            if let v = duration(m["max_robot_lifetime"], "credentials.max_robot_lifetime") { c.credentials.maxRobotLifetime = v }
            if let v = duration(m["max_rotation_overlap"], "credentials.max_rotation_overlap") { c.credentials.maxRotationOverlap = v }
        }
        if let v = strings(top["admin_groups"], "admin_groups") { c.adminGroups = v }
        if let m = section(top["mfa"], "mfa") {
            if let v = choice(m["require"], "mfa.require", as: MFAPolicy.Requirement.self) { c.mfa.require = v }
            if let v = strings(m["groups"], "mfa.groups") { c.mfa.groups = Set(v) }
            if let v = duration(m["grace_period"], "mfa.grace_period") { c.mfa.gracePeriod = v }
            if let v = choice(m["kerberos"], "mfa.kerberos") { c.mfa.kerberosSatisfies = v == "satisfies" }
            if let v = duration(m["step_up"], "mfa.step_up") { c.mfa.stepUp = v }
            if let a = section(m["acr"], "mfa.acr") {
                if let v = string(a["multi_factor"], "mfa.acr.multi_factor") { c.mfa.acrMultiFactor = v; c.tokens.acrMultiFactor = v }
                if let v = string(a["single_factor"], "mfa.acr.single_factor") { c.mfa.acrSingleFactor = v; c.tokens.acrSingleFactor = v }
            }
            if c.mfa.require == .groups && c.mfa.groups.isEmpty { problem(m["groups"], "mfa.groups", "require: groups needs at least one group") }
        }
        if let m = section(top["webhook"], "webhook") {
            if let v = string(m["bearer_token_file"], "webhook.bearer_token_file") { c.webhookBearerTokenFile = v }
            if let v = strings(m["audiences"], "webhook.audiences") { c.webhookAudiences = v }
            if let v = duration(m["cache_ttl"], "webhook.cache_ttl") { c.webhookCacheTTL = v }
        }
        if let m = section(top["kubernetes"], "kubernetes") {
            if let am = section(m["apiserver"], "kubernetes.apiserver") {
                if let v = choice(am["username_claim"], "kubernetes.apiserver.username_claim") { c.apiserver.usernameClaim = v }
                if let v = string(am["username_prefix"], "kubernetes.apiserver.username_prefix") { c.apiserver.usernamePrefix = v }
                if let v = string(am["groups_claim"], "kubernetes.apiserver.groups_claim") {
                    if v == "groups" { c.apiserver.groupsClaim = v } else { problem(am["groups_claim"], "kubernetes.apiserver.groups_claim", "the portal puts groups in the 'groups' claim") }
                }
                if let v = string(am["groups_prefix"], "kubernetes.apiserver.groups_prefix") { c.apiserver.groupsPrefix = v }
            }
            readClusters(m["clusters"], into: &c)
        }
        if let n = top["kerberos"] {
            c.kerberos = readKerberos(n)
        }
        if let n = top["ldap"] {
            // After `tokens`: the directory cache may not outlive an id_token.
            c.ldap = readLDAP(n, idTokenLifetime: c.tokens.idTokenTTL)
        }
        readClients(top["clients"], into: &c)
    }

    private mutating func readClusters(_ node: Node?, into c: inout PortalConfig) {
        for (path, item, cm) in items(node, "kubernetes.clusters") {
            let name = string(cm["name"], path + ".name")
            let server = string(cm["server"], path + ".server")
            let cluster = PortalConfig.Cluster(name: name ?? "", server: server ?? "",
                                               caFile: string(cm["certificate_authority_file"], path + ".certificate_authority_file"),
                                               caData: string(cm["certificate_authority_data"], path + ".certificate_authority_data"),
                                               namespace: string(cm["namespace"], path + ".namespace"),
                                               clientID: string(cm["client_id"], path + ".client_id") ?? "kubernetes")
            guard let name, !name.trimmingCharacters(in: .whitespaces).isEmpty else { problem(item, path + ".name", "is required"); continue }
            guard let server, let u = URLComponents(string: server), u.scheme == "https", u.host != nil else {
                problem(cm["server"] ?? item, path + ".server", "an https URL of the API server is required"); continue
            }
            if cluster.caFile != nil && cluster.caData != nil { problem(item, path, "give certificate_authority_file or certificate_authority_data, not both") }
            if let d = cluster.caData, !d.contains("-----BEGIN CERTIFICATE-----") { problem(cm["certificate_authority_data"], path + ".certificate_authority_data", "expected a PEM certificate") }
            if c.clusters.contains(where: { $0.name == name }) { problem(cm["name"], path + ".name", "duplicate cluster name '\(name)'") }
            c.clusters.append(cluster)
        }
    }

    private mutating func readClients(_ node: Node?, into c: inout PortalConfig) {
        for (path, item, m) in items(node, "clients") {
            let id = string(m["id"], path + ".id")
            let client = PortalConfig.ClientConfig(
                id: id ?? "", name: string(m["name"], path + ".name") ?? id ?? "",
                redirectURIs: strings(m["redirect_uris"], path + ".redirect_uris") ?? [],
                isPublic: bool(m["public"], path + ".public") ?? false,
                secretFile: string(m["secret_file"], path + ".secret_file"),
                secretEnv: string(m["secret_env"], path + ".secret_env"),
                postLogoutRedirectURIs: strings(m["post_logout_redirect_uris"], path + ".post_logout_redirect_uris") ?? [],
                backchannelLogoutURI: string(m["backchannel_logout_uri"], path + ".backchannel_logout_uri") ?? "",
                introspectAll: bool(m["introspect_all_clients"], path + ".introspect_all_clients") ?? false,
                grantTypes: strings(m["grant_types"], path + ".grant_types") ?? Client.defaultGrantTypes)
            guard let id, !id.isEmpty else { problem(item, path + ".id", "is required"); continue }
            for (key, uris) in [("redirect_uris", client.redirectURIs), ("post_logout_redirect_uris", client.postLogoutRedirectURIs)] {
                for (j, uri) in uris.enumerated() {
                    if let why = ClientRegistry.redirectURIProblem(uri) { problem(m[key], "\(path).\(key)[\(j)]", "'\(uri)': \(why)") }
                }
            }
            for g in client.grantTypes where !PortalConfig.clientGrantTypes.contains(g) {
                problem(m["grant_types"], path + ".grant_types", "'\(g)' is not one of \(PortalConfig.clientGrantTypes.joined(separator: ", "))")
            }
            if !client.backchannelLogoutURI.isEmpty, let why = ClientRegistry.redirectURIProblem(client.backchannelLogoutURI) {
                problem(m["backchannel_logout_uri"], path + ".backchannel_logout_uri", "'\(client.backchannelLogoutURI)': \(why)")
            }
            if client.isPublic && (client.secretFile != nil || client.secretEnv != nil) {
                problem(item, path, "a public client has no secret: remove secret_file/secret_env or set public: false")
            }
            if !client.isPublic && client.secretFile == nil && client.secretEnv == nil {
                problem(item, path, "a confidential client needs secret_file or secret_env (or public: true)")
            }
            if c.clients.contains(where: { $0.id == id }) { problem(m["id"], path + ".id", "duplicate client id '\(id)'") }
            c.clients.append(client)
        }
    }

    mutating func setListen(_ v: String, _ c: inout PortalConfig, node: Node?) {
        guard let colon = v.lastIndex(of: ":"), let port = Int(v[v.index(after: colon)...]), (1...65535).contains(port) else {
            problem(node, "listen", "expected host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8443")
            return
        }
        var host = String(v[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        c.listenHost = host.isEmpty ? "0.0.0.0" : host
        c.listenPort = port
    }
}
