import Foundation
import IdP

extension ConfigLoader {
    /// Checks across keys and against the files they name, after the environment is applied.
    func validate(_ c: PortalConfig) -> [ConfigProblem] {
        var problems: [ConfigProblem] = []
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
        return problems
    }
}
