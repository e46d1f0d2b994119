import Foundation
import IdP
import Yams

/// Reads the YAML file and the environment into a `PortalConfig`, collecting every
/// problem (with file:line:column and the key path) instead of stopping at the first.
struct ConfigLoader {
    let file: String?
    let env: [String: String]
    private(set) var problems: [ConfigProblem] = []

    init(file: String?, env: [String: String] = ProcessInfo.processInfo.environment) {
        self.file = file ?? env["PORTAL_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        self.env = env
    }

    mutating func load() -> PortalConfig {
        var config = PortalConfig()
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                problems.append(.init(location: file, message: "cannot read the file"))
                return config
            }
            do {
                if let node = try Yams.compose(yaml: text) {
                    read(node, into: &config)
                }
            } catch {
                problems.append(.init(location: file, message: "not valid YAML: \(error)"))
                return config
            }
        }
        applyEnvironment(&config)
        problems += KerberosConfigReader.finish(&config, file: file)
        validate(config)
        return config
    }

    // MARK: - Reading

    /// "file:line:column: key.path" (or "file: key.path" without a position). Shared by every config reader.
    static func location(file: String?, _ node: Node?, _ path: String) -> String {
        let f = file ?? "config"
        if let m = node?.mark { return "\(f):\(m.line):\(m.column): \(path)" }
        return "\(f): \(path)"
    }

    /// The mapping at `node` restricted to `known` keys, with a problem (and a "did you mean"
    /// hint) for each unknown key; `key:` with nothing after it means "use the default".
    /// Shared by every config reader; the caller records the problems.
    static func knownKeys(_ node: Node, _ path: String, known: [String]) -> (keys: [String: Node]?, problems: [(Node?, String, String)]) {
        if isNull(node) { return ([:], []) }
        guard let m = node.mapping else { return (nil, [(node, path, "expected a mapping")]) }
        var out: [String: Node] = [:]
        var problems: [(Node?, String, String)] = []
        for (k, v) in m {
            guard let key = k.string else { problems.append((k, path, "keys must be strings")); continue }
            let full = path.isEmpty ? key : path + "." + key
            if !known.contains(key) {
                let hint = known.min { distance($0, key) < distance($1, key) }
                problems.append((k, full, "unknown key" + (hint.map { distance($0, key) <= 3 ? " (did you mean '\($0)'?)" : "" } ?? "")))
                continue
            }
            if isNull(v) { continue }
            out[key] = v
        }
        return (out, problems)
    }

    private mutating func problem(_ node: Node?, _ path: String, _ message: String) {
        problems.append(.init(location: Self.location(file: file, node, path), message: message))
    }

    /// The mapping at `node`, reporting keys not in `known`.
    private mutating func mapping(_ node: Node, _ path: String, known: [String]) -> [String: Node]? {
        let (keys, found) = Self.knownKeys(node, path, known: known)
        for (n, p, m) in found { problem(n, p, m) }
        return keys
    }

    private mutating func string(_ node: Node?, _ path: String) -> String? {
        guard let node else { return nil }
        guard let s = node.scalar?.string else { problem(node, path, "expected a string"); return nil }
        return s
    }

    private mutating func int(_ node: Node?, _ path: String, min: Int, max: Int) -> Int? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = Int(s) else { problem(node, path, "expected an integer"); return nil }
        guard v >= min && v <= max else { problem(node, path, "must be between \(min) and \(max)"); return nil }
        return v
    }

    private mutating func bool(_ node: Node?, _ path: String) -> Bool? {
        guard let node else { return nil }
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: problem(node, path, "expected true or false"); return nil
        }
    }

    private mutating func duration(_ node: Node?, _ path: String, min: TimeInterval, max: TimeInterval) -> TimeInterval? {
        guard let node else { return nil }
        guard let s = node.scalar?.string, let v = DurationParser.seconds(s) else {
            problem(node, path, "expected a duration such as 60s, 15m, 12h or 30d")
            return nil
        }
        guard v >= min && v <= max else {
            problem(node, path, "must be between \(DurationParser.format(min)) and \(DurationParser.format(max))")
            return nil
        }
        return v
    }

    private mutating func strings(_ node: Node?, _ path: String) -> [String]? {
        guard let node else { return nil }
        guard let seq = node.sequence else { problem(node, path, "expected a list"); return nil }
        var out: [String] = []
        for (i, item) in seq.enumerated() {
            if let s = string(item, "\(path)[\(i)]") { out.append(s) }
        }
        return out
    }

    private mutating func read(_ root: Node, into c: inout PortalConfig) {
        guard let top = mapping(root, "", known: ["issuer", "listen", "data_dir", "database", "tls", "log", "tokens", "signing",
                                                  "passwords", "login", "setup", "clients", "ui", "kubernetes", "credentials", "webhook", "admin_groups", "ldap", "kerberos",
                                                  "server", "metrics"]) else { return }
        if let v = string(top["issuer"], "issuer") { c.issuer = v }
        if let n = top["listen"], let v = string(n, "listen") { setListen(v, &c, node: n) }
        if let v = string(top["data_dir"], "data_dir") { c.dataDir = v }
        if let n = top["database"], let m = mapping(n, "database", known: ["url", "pool_size", "ca_file", "acquire_timeout"]) {
            if let v = duration(m["acquire_timeout"], "database.acquire_timeout", min: 0.1, max: 120) { c.databaseAcquireTimeout = v }
            if let v = string(m["url"], "database.url") { c.databaseURL = v }
            if let v = int(m["pool_size"], "database.pool_size", min: 1, max: 200) { c.databasePoolSize = v }
            if let v = string(m["ca_file"], "database.ca_file") { c.databaseCAFile = v }
        }
        if let n = top["tls"], let m = mapping(n, "tls", known: ["certificate_file", "key_file", "ca_file"]) {
            let cert = string(m["certificate_file"], "tls.certificate_file")
            let key = string(m["key_file"], "tls.key_file")
            if let cert, let key { c.tls = .init(certificateFile: cert, keyFile: key, caFile: string(m["ca_file"], "tls.ca_file")) } else {
                problem(n, "tls", "both certificate_file and key_file are required")
            }
        }
        if let n = top["log"], let m = mapping(n, "log", known: ["level", "format"]) {
            if let v = string(m["level"], "log.level") {
                if ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) { c.logLevel = v } else {
                    problem(m["level"], "log.level", "must be one of trace, debug, info, notice, warning, error, critical")
                }
            }
            if let v = string(m["format"], "log.format") {
                if ["json", "text"].contains(v) { c.logFormat = v } else { problem(m["format"], "log.format", "must be json or text") }
            }
        }
        if let n = top["tokens"], let m = mapping(n, "tokens", known: ["id_token_lifetime", "access_token_lifetime", "code_lifetime",
                                                                       "refresh_idle_timeout", "refresh_absolute_lifetime",
                                                                       "refresh_grace_window", "session_lifetime"]) {
            if let v = duration(m["id_token_lifetime"], "tokens.id_token_lifetime", min: 5, max: 3600) { c.tokens.idTokenTTL = v }
            if let v = duration(m["access_token_lifetime"], "tokens.access_token_lifetime", min: 5, max: 3600) { c.tokens.accessTokenTTL = v }
            if let v = duration(m["code_lifetime"], "tokens.code_lifetime", min: 5, max: 600) { c.tokens.codeTTL = v }
            if let v = duration(m["refresh_idle_timeout"], "tokens.refresh_idle_timeout", min: 60, max: 30 * 86400) { c.tokens.refreshIdleTimeout = v }
            if let v = duration(m["refresh_absolute_lifetime"], "tokens.refresh_absolute_lifetime", min: 60, max: 365 * 86400) { c.tokens.refreshAbsoluteLifetime = v }
            if let v = duration(m["refresh_grace_window"], "tokens.refresh_grace_window", min: 0, max: 60) { c.tokens.refreshGraceWindow = v }
            if let v = duration(m["session_lifetime"], "tokens.session_lifetime", min: 60, max: 30 * 86400) { c.tokens.sessionTTL = v }
        }
        if let n = top["signing"], let m = mapping(n, "signing", known: ["algorithm", "rotation_period", "publish_ahead", "encryption_key_file", "check_interval"]) {
            if let v = duration(m["check_interval"], "signing.check_interval", min: 1, max: 3600) { c.keyCheckInterval = v }
            if let v = string(m["algorithm"], "signing.algorithm") {
                if let a = SigningAlgorithm(rawValue: v.uppercased()) { c.signing.algorithm = a } else {
                    problem(m["algorithm"], "signing.algorithm", "must be RS256 or ES256")
                }
            }
            if let v = duration(m["rotation_period"], "signing.rotation_period", min: 3600, max: 365 * 86400) { c.signing.rotationPeriod = v }
            if let v = duration(m["publish_ahead"], "signing.publish_ahead", min: 0, max: 30 * 86400) { c.signing.publishAhead = v }
            if let v = string(m["encryption_key_file"], "signing.encryption_key_file") { c.keyEncryptionKeyFile = v }
        }
        if let n = top["passwords"], let m = mapping(n, "passwords", known: ["bcrypt_cost", "min_length"]) {
            if let v = int(m["bcrypt_cost"], "passwords.bcrypt_cost", min: 10, max: 16) { c.bcryptCost = v }
            if let v = int(m["min_length"], "passwords.min_length", min: 8, max: 128) { c.passwords.minLength = v }
        }
        if let n = top["server"], let m = mapping(n, "server", known: ["trusted_proxies", "forwarded_header", "header_timeout", "body_timeout", "idle_timeout"]) {
            if let v = string(m["forwarded_header"], "server.forwarded_header") {
                if let h = ClientAddress.Header(rawValue: v.lowercased()) { c.forwardedHeader = h } else {
                    problem(m["forwarded_header"], "server.forwarded_header", "must be x-forwarded-for or forwarded")
                }
            }
            if let v = strings(m["trusted_proxies"], "server.trusted_proxies") {
                let (set, invalid) = CIDRSet.parse(v)
                if invalid.isEmpty { c.trustedProxies = set } else {
                    problem(m["trusted_proxies"], "server.trusted_proxies", "not an address or CIDR range: \(invalid.joined(separator: ", "))")
                }
            }
            if let v = duration(m["header_timeout"], "server.header_timeout", min: 1, max: 600) { c.headerTimeout = v }
            if let v = duration(m["body_timeout"], "server.body_timeout", min: 1, max: 600) { c.bodyTimeout = v }
            if let v = duration(m["idle_timeout"], "server.idle_timeout", min: 1, max: 3600) { c.idleTimeout = v }
        }
        if let n = top["metrics"], let m = mapping(n, "metrics", known: ["bearer_token_file", "public"]) {
            if let v = string(m["bearer_token_file"], "metrics.bearer_token_file") { c.metricsBearerTokenFile = v }
            if let n = m["public"] {
                if let b = n.scalar.flatMap({ Bool($0.string) }) { c.metricsPublic = b } else { problem(n, "metrics.public", "expected true or false") }
            }
        }
        if let n = top["login"], let m = mapping(n, "login", known: ["max_failures_per_user", "max_failures_per_address", "max_failures_unfamiliar",
                                                                     "failure_window", "lockout", "familiar_for"]) {
            if let v = int(m["max_failures_unfamiliar"], "login.max_failures_unfamiliar", min: 1, max: 100_000) { c.login.maxFailuresUnfamiliar = v }
            if let v = duration(m["familiar_for"], "login.familiar_for", min: 0, max: 365 * 86400) { c.login.familiarFor = v }
            if let v = int(m["max_failures_per_user"], "login.max_failures_per_user", min: 1, max: 1000) { c.login.maxFailuresPerUser = v }
            if let v = int(m["max_failures_per_address"], "login.max_failures_per_address", min: 1, max: 100_000) { c.login.maxFailuresPerAddress = v }
            if let v = duration(m["failure_window"], "login.failure_window", min: 1, max: 86400) { c.login.failureWindow = v }
            if let v = duration(m["lockout"], "login.lockout", min: 1, max: 86400) { c.login.lockout = v }
        }
        if let n = top["setup"], let m = mapping(n, "setup", known: ["link_lifetime"]) {
            if let v = duration(m["link_lifetime"], "setup.link_lifetime", min: 60, max: 7 * 86400) { c.setupLinkLifetime = v }
        }
        if let n = top["ui"], let m = mapping(n, "ui", known: ["public_dir"]) {
            if let v = string(m["public_dir"], "ui.public_dir") { c.publicDir = v }
        }
        if let n = top["credentials"], let m = mapping(n, "credentials", known: ["max_user_lifetime", "max_robot_lifetime", "max_rotation_overlap"]) {
            if let v = duration(m["max_user_lifetime"], "credentials.max_user_lifetime", min: 3600, max: 3 * 365 * 86400) { c.credentials.maxUserLifetime = v }
            if let v = duration(m["max_robot_lifetime"], "credentials.max_robot_lifetime", min: 3600, max: 5 * 365 * 86400) { c.credentials.maxRobotLifetime = v }
            if let v = duration(m["max_rotation_overlap"], "credentials.max_rotation_overlap", min: 0, max: 90 * 86400) { c.credentials.maxRotationOverlap = v }
        }
        if let v = strings(top["admin_groups"], "admin_groups") { c.adminGroups = v }
        if let n = top["webhook"], let m = mapping(n, "webhook", known: ["bearer_token_file", "audiences"]) {
            if let v = string(m["bearer_token_file"], "webhook.bearer_token_file") { c.webhookBearerTokenFile = v }
            if let v = strings(m["audiences"], "webhook.audiences") { c.webhookAudiences = v }
        }
        if let n = top["kubernetes"], let m = mapping(n, "kubernetes", known: ["clusters", "apiserver"]) {
            if let a = m["apiserver"], let am = mapping(a, "kubernetes.apiserver", known: ["username_claim", "username_prefix", "groups_claim", "groups_prefix"]) {
                if let v = string(am["username_claim"], "kubernetes.apiserver.username_claim") {
                    if ["sub", "preferred_username", "email"].contains(v) { c.apiserver.usernameClaim = v } else {
                        problem(am["username_claim"], "kubernetes.apiserver.username_claim", "must be sub, preferred_username or email")
                    }
                }
                if let v = string(am["username_prefix"], "kubernetes.apiserver.username_prefix") { c.apiserver.usernamePrefix = v }
                if let v = string(am["groups_claim"], "kubernetes.apiserver.groups_claim") {
                    if v == "groups" { c.apiserver.groupsClaim = v } else { problem(am["groups_claim"], "kubernetes.apiserver.groups_claim", "the portal puts groups in the 'groups' claim") }
                }
                if let v = string(am["groups_prefix"], "kubernetes.apiserver.groups_prefix") { c.apiserver.groupsPrefix = v }
            }
            if let cl = m["clusters"] {
                if let seq = cl.sequence {
                    for (i, item) in seq.enumerated() {
                        let path = "kubernetes.clusters[\(i)]"
                        guard let cm = mapping(item, path, known: ["name", "server", "certificate_authority_file", "certificate_authority_data", "namespace", "client_id"]) else { continue }
                        guard let name = string(cm["name"], path + ".name"), !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                            problem(item, path + ".name", "is required"); continue
                        }
                        guard let server = string(cm["server"], path + ".server"), let u = URLComponents(string: server), u.scheme == "https", u.host != nil else {
                            problem(cm["server"] ?? item, path + ".server", "an https URL of the API server is required"); continue
                        }
                        let cluster = PortalConfig.Cluster(name: name, server: server, caFile: string(cm["certificate_authority_file"], path + ".certificate_authority_file"),
                                                           caData: string(cm["certificate_authority_data"], path + ".certificate_authority_data"),
                                                           namespace: string(cm["namespace"], path + ".namespace"),
                                                           clientID: string(cm["client_id"], path + ".client_id") ?? "kubernetes")
                        if cluster.caFile != nil && cluster.caData != nil { problem(item, path, "give certificate_authority_file or certificate_authority_data, not both") }
                        if let d = cluster.caData, !d.contains("-----BEGIN CERTIFICATE-----") { problem(cm["certificate_authority_data"], path + ".certificate_authority_data", "expected a PEM certificate") }
                        if c.clusters.contains(where: { $0.name == name }) { problem(cm["name"], path + ".name", "duplicate cluster name '\(name)'") }
                        c.clusters.append(cluster)
                    }
                } else { problem(cl, "kubernetes.clusters", "expected a list") }
            }
        }
        if let n = top["kerberos"] {
            var reader = KerberosConfigReader(file: file)
            c.kerberos = reader.read(n)
            problems += reader.problems
        }
        if let n = top["ldap"] {
            // After `tokens`: the directory cache may not outlive an id_token.
            var reader = LDAPConfigReader(file: file, env: env)
            c.ldap = reader.read(n, idTokenLifetime: c.tokens.idTokenTTL)
            problems += reader.problems
        }
        if let n = top["clients"] {
            guard let seq = n.sequence else { problem(n, "clients", "expected a list"); return }
            for (i, item) in seq.enumerated() {
                let path = "clients[\(i)]"
                guard let m = mapping(item, path, known: ["id", "name", "redirect_uris", "public", "secret_file", "secret_env"]) else { continue }
                guard let id = string(m["id"], path + ".id"), !id.isEmpty else { problem(item, path + ".id", "is required"); continue }
                let client = PortalConfig.ClientConfig(
                    id: id, name: string(m["name"], path + ".name") ?? id,
                    redirectURIs: strings(m["redirect_uris"], path + ".redirect_uris") ?? [],
                    isPublic: bool(m["public"], path + ".public") ?? false,
                    secretFile: string(m["secret_file"], path + ".secret_file"),
                    secretEnv: string(m["secret_env"], path + ".secret_env"))
                for (j, uri) in client.redirectURIs.enumerated() {
                    if let why = ClientRegistry.redirectURIProblem(uri) { problem(m["redirect_uris"], "\(path).redirect_uris[\(j)]", "'\(uri)': \(why)") }
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
    }

    private mutating func setListen(_ v: String, _ c: inout PortalConfig, node: Node?) {
        guard let colon = v.lastIndex(of: ":"), let port = Int(v[v.index(after: colon)...]), (1...65535).contains(port) else {
            problem(node, "listen", "expected host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8443")
            return
        }
        var host = String(v[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        c.listenHost = host.isEmpty ? "0.0.0.0" : host
        c.listenPort = port
    }

    private mutating func applyEnvironment(_ c: inout PortalConfig) {
        if let v = env["PORTAL_ISSUER"], !v.isEmpty { c.issuer = v }
        if let v = env["PORTAL_LISTEN"], !v.isEmpty { setListen(v, &c, node: nil) }
        if let v = env["PORTAL_DATA_DIR"], !v.isEmpty { c.dataDir = v }
        if let v = env["PORTAL_DATABASE_URL"], !v.isEmpty { c.databaseURL = v }
        if let v = env["PORTAL_LOG_LEVEL"], !v.isEmpty { c.logLevel = v }
        if let v = env["PORTAL_LOG_FORMAT"], !v.isEmpty { c.logFormat = v }
    }

    // MARK: - Cross-field checks

    private mutating func validate(_ c: PortalConfig) {
        let issuerLoc = file.map { "\($0): issuer" } ?? "issuer"
        if let u = URLComponents(string: c.issuer), let scheme = u.scheme, let host = u.host, !host.isEmpty {
            if u.query != nil || u.fragment != nil { problems.append(.init(location: issuerLoc, message: "must not have a query or fragment")) }
            if c.issuer.hasSuffix("/") { problems.append(.init(location: issuerLoc, message: "must not end with '/'")) }
            if scheme == "http" && !["localhost", "127.0.0.1", "::1", "[::1]"].contains(host) {
                problems.append(.init(location: issuerLoc, message: "plain http is allowed only for a loopback issuer; kube-apiserver requires https"))
            } else if scheme != "http" && scheme != "https" {
                problems.append(.init(location: issuerLoc, message: "must be an https URL"))
            }
        } else {
            problems.append(.init(location: issuerLoc, message: "'\(c.issuer)' is not an absolute URL"))
        }
        if let tls = c.tls {
            for (k, f) in [("tls.certificate_file", tls.certificateFile), ("tls.key_file", tls.keyFile)] where !FileManager.default.isReadableFile(atPath: f) {
                problems.append(.init(location: "\(file ?? "config"): \(k)", message: "cannot read '\(f)'"))
            }
        }
        for (key, f) in [("webhook.bearer_token_file", c.webhookBearerTokenFile), ("metrics.bearer_token_file", c.metricsBearerTokenFile)] {
            guard let f else { continue }
            let token = (try? String(contentsOfFile: f, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if token == nil {
                problems.append(.init(location: "\(file ?? "config"): \(key)", message: "cannot read '\(f)'"))
            } else if (token ?? "").count < 32 {
                problems.append(.init(location: "\(file ?? "config"): \(key)", message: "the token must be at least 32 characters"))
            }
        }
        if let f = c.tls?.caFile, !FileManager.default.isReadableFile(atPath: f) {
            problems.append(.init(location: "\(file ?? "config"): tls.ca_file", message: "cannot read '\(f)'"))
        }
        for cl in c.clusters {
            if let f = cl.caFile {
                if let pem = try? String(contentsOfFile: f, encoding: .utf8) {
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        problems.append(.init(location: "\(file ?? "config"): kubernetes.clusters[\(cl.name)].certificate_authority_file", message: "'\(f)' is not a PEM certificate"))
                    }
                } else {
                    problems.append(.init(location: "\(file ?? "config"): kubernetes.clusters[\(cl.name)].certificate_authority_file", message: "cannot read '\(f)'"))
                }
            }
            if cl.clientID != "kubernetes" && !c.clients.contains(where: { $0.id == cl.clientID }) {
                problems.append(.init(location: "\(file ?? "config"): kubernetes.clusters[\(cl.name)].client_id", message: "no client '\(cl.clientID)' is declared in clients"))
            }
        }
        if let f = c.keyEncryptionKeyFile {
            if let d = FileManager.default.contents(atPath: f) {
                if String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8.count < KeySealer.minimumSecretLength {
                    problems.append(.init(location: "\(file ?? "config"): signing.encryption_key_file", message: "the key-encryption key must be at least \(KeySealer.minimumSecretLength) characters"))
                }
            } else {
                problems.append(.init(location: "\(file ?? "config"): signing.encryption_key_file", message: "cannot read '\(f)'"))
            }
        }
        if let v = env["PORTAL_KEY_ENCRYPTION_KEY"], !v.isEmpty,
           v.trimmingCharacters(in: .whitespacesAndNewlines).utf8.count < KeySealer.minimumSecretLength {
            problems.append(.init(location: "environment: PORTAL_KEY_ENCRYPTION_KEY", message: "the key-encryption key must be at least \(KeySealer.minimumSecretLength) characters"))
        }
        if let url = c.databaseURL, !url.hasPrefix("sqlite://") && !c.usesPostgres {
            problems.append(.init(location: "\(file ?? "config"): database.url",
                                  message: "expected sqlite:///path or postgres://user:password@host:5432/database"))
        }
        if let f = c.databaseCAFile, !FileManager.default.isReadableFile(atPath: f) {
            problems.append(.init(location: "\(file ?? "config"): database.ca_file", message: "cannot read '\(f)'"))
        }
        for client in c.clients {
            if let f = client.secretFile, !FileManager.default.isReadableFile(atPath: f) {
                problems.append(.init(location: "\(file ?? "config"): clients[\(client.id)].secret_file", message: "cannot read '\(f)'"))
            }
            if let e = client.secretEnv, (env[e] ?? "").isEmpty {
                problems.append(.init(location: "\(file ?? "config"): clients[\(client.id)].secret_env", message: "environment variable \(e) is empty or unset"))
            }
            let secret = client.secretEnv.flatMap { env[$0] } ?? client.secretFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            if let secret, !secret.isEmpty, secret.trimmingCharacters(in: .whitespacesAndNewlines).count < Secrets.minClientSecretLength {
                problems.append(.init(location: "\(file ?? "config"): clients[\(client.id)]",
                                      message: "the client secret must be at least \(Secrets.minClientSecretLength) characters (generate one: openssl rand -base64 32)"))
            }
            if client.redirectURIs.isEmpty {
                problems.append(.init(location: "\(file ?? "config"): clients[\(client.id)].redirect_uris", message: "at least one redirect URI is required"))
            }
        }
        if c.tokens.refreshIdleTimeout > c.tokens.refreshAbsoluteLifetime {
            problems.append(.init(location: "\(file ?? "config"): tokens.refresh_idle_timeout", message: "must not exceed tokens.refresh_absolute_lifetime"))
        }
    }

    static func isNull(_ node: Node) -> Bool {
        guard let s = node.scalar else { return false }
        return s.tag.rawValue == "tag:yaml.org,2002:null" || (s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string))
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
