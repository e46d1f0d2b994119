import Foundation
import IdP
import Testing
@testable import Portal

/// The schema, the loader, the example file and the reference must say the same thing.
@Suite("One configuration schema")
struct ConfigSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Loads YAML text; returns the configuration, the problems (file name shortened) and the keys read.
    func load(_ yaml: String, env: [String: String] = [:]) throws -> (PortalConfig, [String], Set<String>) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("portal.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        var loader = ConfigLoader(file: file, env: env)
        let config = loader.load()
        return (config, loader.problems.map { $0.description.replacingOccurrences(of: file, with: "portal.yaml") }, loader.consulted)
    }

    /// A document written from the schema alone (independently of ConfigDocs): the keys `include`
    /// picks, each with its default or example value, lists with one item.
    func document(_ include: (ConfigKey) -> Bool, under parent: String = "", indent: Int = 0) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var out: [String] = []
        for key in ConfigSchema.children(of: parent) where include(key) {
            switch key.kind {
            case .section:
                out.append(pad + key.name + ":")
                out += document(include, under: key.path, indent: indent + 2)
            case .sections:
                var item = document(include, under: key.path + "[]", indent: indent + 4)
                guard !item.isEmpty else { continue }
                item[0] = pad + "  - " + item[0].dropFirst(indent + 4)
                out += [pad + key.name + ":"] + item
            default:
                out.append(pad + key.name + ": " + (key.defaultValue ?? key.example!))
            }
        }
        return out
    }

    func hasRequiredKey(_ key: ConfigKey) -> Bool {
        key.required || ConfigSchema.keys.contains { $0.required && $0.path.hasPrefix(key.path + ".") || $0.required && $0.path.hasPrefix(key.path + "[].") }
    }

    @Test func everyKeyHasAMeaningAndAValueToShow() {
        for key in ConfigSchema.keys {
            #expect(!key.meaning.isEmpty, "\(key.path)")
            if !key.isContainer { #expect(key.defaultValue != nil || key.example != nil, "\(key.path) has neither a default nor an example") }
            if key.required { #expect(key.defaultValue == nil, "\(key.path) is required and has a default") }
            if !key.parent.isEmpty { #expect(ConfigSchema.key(key.parent.hasSuffix("[]") ? String(key.parent.dropLast(2)) : key.parent) != nil, "\(key.path)'s section is not declared") }
        }
        #expect(Set(ConfigSchema.keys.map(\.path)).count == ConfigSchema.keys.count, "a key is declared twice")
    }

    @Test func theLoaderAcceptsAndReadsEveryDeclaredKey() throws {
        let yaml = document { _ in true }.joined(separator: "\n")
        let (_, problems, consulted) = try load(yaml, env: ["GRAFANA_CLIENT_SECRET": String(repeating: "s", count: 40), "LDAP_BIND_PASSWORD": "pw"])
        let typeProblems = problems.filter { $0.contains("unknown key") || $0.contains("expected ") || $0.contains("must be between") || $0.contains("must be one of") }
        #expect(typeProblems.isEmpty, "\(typeProblems)\n\(yaml)")
        let unread = Set(ConfigSchema.keys.map(\.path)).subtracting(consulted)
        #expect(unread.isEmpty, "declared but never read by the loader: \(unread.sorted())")
    }

    @Test func theDeclaredDefaultsAreTheLoadersDefaults() throws {
        // The same configuration with and without every default spelled out.
        let minimal = document { hasRequiredKey($0) }
        let spelled = document { hasRequiredKey($0) || $0.defaultValue != nil || ($0.isContainer && !$0.optionalSection) }
        let (a, _, _) = try load(minimal.joined(separator: "\n"))
        let (b, _, _) = try load(spelled.joined(separator: "\n"))
        #expect(a.ldap != nil && a.kerberos != nil && a.clients.count == 1 && a.clusters.count == 1 && a.tls != nil, "\(minimal)")
        #expect(a.ldap == b.ldap)
        #expect(a.kerberos == b.kerberos)
        #expect(fingerprint(a) == fingerprint(b), "\(spelled.joined(separator: "\n"))")
        // And the schema's defaults are what an empty file gives.
        let (empty, problems, _) = try load("{}\n")
        #expect(problems.isEmpty, "\(problems)")
        var z = empty
        z.tls = b.tls; z.clusters = b.clusters; z.clients = b.clients
        #expect(fingerprint(z) == fingerprint(b))
    }

    /// Every setting of a configuration (PortalConfig's own description is redacted on purpose).
    func fingerprint(_ c: PortalConfig) -> [String] {
        let parts: [Any] = [c.issuer, c.listenHost, c.listenPort, c.dataDir, c.databaseURL as Any, c.databasePoolSize, c.databaseCAFile as Any,
                            c.databaseAcquireTimeout, c.tls as Any, c.logLevel, c.logFormat, c.tokens, c.signing, c.keyEncryptionKeyFile as Any,
                            c.keyCheckInterval, c.bcryptCost, c.passwords, c.login, c.setupLinkLifetime, c.clients, c.builtinKubernetesClient,
                            c.clusters, c.apiserver, c.credentials, c.adminGroups, c.webhookBearerTokenFile as Any, c.webhookAudiences,
                            c.publicDir as Any, c.maxBodyBytes, c.trustedProxies, c.forwardedHeader, c.headerTimeout, c.bodyTimeout,
                            c.idleTimeout, c.metricsBearerTokenFile as Any, c.metricsPublic]
        return parts.map { String(reflecting: $0) }
    }

    @Test func theCommittedExampleIsTheGeneratedOneAndLoads() throws {
        let path = Self.root.appendingPathComponent("deploy/portal.example.yaml").path
        let committed = try String(contentsOfFile: path, encoding: .utf8)
        #expect(committed == ConfigDocs.exampleYAML(), "deploy/portal.example.yaml is stale: run scripts/docs.sh")
        var loader = ConfigLoader(file: path, env: [:])
        _ = loader.load()
        #expect(loader.problems.isEmpty, "\(loader.problems)")
        for key in ConfigSchema.keys {
            let shown = committed.split(separator: "\n").contains { line in
                line.replacingOccurrences(of: "#", with: " ").replacingOccurrences(of: "- ", with: "  ")
                    .trimmingCharacters(in: .whitespaces).hasPrefix(key.name + ":")
            }
            #expect(shown, "\(key.path) is not in the example")
        }
    }

    @Test func theCommittedReferenceIsTheGeneratedOneAndNamesEveryKey() throws {
        let committed = try String(contentsOfFile: Self.root.appendingPathComponent("docs/configuration.md").path, encoding: .utf8)
        #expect(committed == ConfigDocs.referenceMarkdown(), "docs/configuration.md is stale: run scripts/docs.sh")
        for key in ConfigSchema.keys where key.parent != "" || !key.isContainer {
            #expect(committed.contains("| `\(key.path)` |"), "\(key.path) has no row in docs/configuration.md")
        }
        for key in ConfigSchema.keys where key.parent == "" && key.isContainer {
            #expect(committed.contains("\n## \(key.name)\n"), "\(key.path) has no section in docs/configuration.md")
        }
        let readme = try String(contentsOfFile: Self.root.appendingPathComponent("README.md").path, encoding: .utf8)
        #expect(readme.contains("docs/configuration.md"))
    }

    @Test func unknownKeysGetTheNearestKnownOne() throws {
        let (_, problems, _) = try load("""
        tokens:
          id_token_lifetme: 60s
        audiences: [kubernetes]
        clients:
          - id: x
            public: true
            redirect_uris: ["http://localhost:1"]
            redirect_uri: ["http://localhost:2"]
        kerberoz: {}
        zzz: 1
        """)
        #expect(problems.contains("portal.yaml:2:3: tokens.id_token_lifetme: unknown key (did you mean 'id_token_lifetime'?)"), "\(problems)")
        #expect(problems.contains("portal.yaml:3:1: audiences: unknown key here (did you mean 'webhook.audiences'?)"), "\(problems)")
        #expect(problems.contains("portal.yaml:8:5: clients[0].redirect_uri: unknown key (did you mean 'redirect_uris'?)"), "\(problems)")
        #expect(problems.contains("portal.yaml:9:1: kerberoz: unknown key (did you mean 'kerberos'?)"), "\(problems)")
        #expect(problems.contains("portal.yaml:10:1: zzz: unknown key"), "\(problems)")
    }

    @Test func rangesAndChoicesComeFromTheSchema() throws {
        let (c, problems, _) = try load("""
        passwords: {bcrypt_cost: 9}
        tokens: {code_lifetime: 11m, id_token_lifetime: 30s}
        log: {level: loud}
        signing: {algorithm: es256}
        server: {forwarded_header: Forwarded}
        ldap: {urls: ldap://a, user_search: {base_dn: dc=x}, groups: {mode: none}, timeouts: {connect: 50ms}}
        """)
        #expect(problems.contains("portal.yaml:1:26: passwords.bcrypt_cost: must be between 10 and 16"), "\(problems)")
        #expect(problems.contains("portal.yaml:2:25: tokens.code_lifetime: must be between 5s and 10m"), "\(problems)")
        #expect(problems.contains { $0.hasPrefix("portal.yaml:3:14: log.level: must be one of trace, debug") }, "\(problems)")
        #expect(problems.contains { $0.hasSuffix("ldap.timeouts.connect: must be between 100ms and 1m") }, "\(problems)")
        #expect(c.signing.algorithm == .es256 && c.forwardedHeader == .forwarded && c.tokens.idTokenTTL == 30)
        #expect(problems.count == 4, "\(problems)")
    }
}
