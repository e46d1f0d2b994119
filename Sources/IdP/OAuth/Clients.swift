import Foundation

/// Config-declared clients (read-only, in memory) in front of database clients.
public struct ClientRegistry: Sendable {
    let configured: [String: Client]
    let store: any ClientStore

    public init(configured: [Client], store: any ClientStore) {
        var map: [String: Client] = [:]
        for c in configured { map[c.id] = c }
        self.configured = map
        self.store = store
    }

    public func client(id: String) async throws -> Client? {
        if let c = configured[id] { return c }
        return try await store.client(id: id)
    }

    public func isConfigured(_ id: String) -> Bool { configured[id] != nil }

    public func all() async throws -> [Client] {
        let db = try await store.listClients().filter { configured[$0.id] == nil }
        return configured.values.sorted { $0.id < $1.id } + db
    }

    /// The built-in public client stock kubectl uses.
    public static func builtinKubernetes(now: Date) -> Client {
        Client(id: "kubernetes", name: "Kubernetes (kubectl)",
               redirectURIs: ["http://localhost:8000", "http://localhost:18000"], isPublic: true, secretHash: nil, createdAt: now,
               grantTypes: Client.defaultGrantTypes + [Client.deviceCodeGrant])
    }

    /// Redirect URIs must be absolute http(s) URIs without fragment; plain http only for loopback hosts.
    public static func redirectURIProblem(_ uri: String) -> String? {
        guard let c = URLComponents(string: uri), let scheme = c.scheme?.lowercased(), let host = c.host, !host.isEmpty else {
            return "not an absolute URI"
        }
        if c.fragment != nil { return "must not contain a fragment" }
        if scheme == "https" { return nil }
        if scheme == "http" {
            return ["localhost", "127.0.0.1", "[::1]", "::1"].contains(host.lowercased()) ? nil : "plain http is allowed only for loopback hosts"
        }
        return "scheme must be https (or http on loopback)"
    }
}

/// The credentials a token request carried (RFC 6749 §2.3.1).
public struct ClientCredentials: Sendable {
    public var basicID: String?
    public var basicSecret: String?
    public var usedBasic: Bool
    public var bodyID: String?
    public var bodySecret: String?

    public init(authorizationHeader: String?, body: FormParameters) throws(OAuthError) {
        usedBasic = false
        if let h = authorizationHeader, h.count > 6, h.prefix(6).lowercased() == "basic " {
            usedBasic = true
            guard let raw = Data(base64Encoded: String(h.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
                  let decoded = String(data: raw, encoding: .utf8),
                  let colon = decoded.firstIndex(of: ":"),
                  let id = FormParameters.decode(decoded[..<colon]),
                  let secret = FormParameters.decode(decoded[decoded.index(after: colon)...])
            else { throw OAuthError.invalidClient("malformed Basic authorization header") }
            guard !Identifiers.hasControlCharacters(id), !Identifiers.hasControlCharacters(secret) else {
                throw OAuthError.invalidClient("malformed Basic authorization header")
            }
            basicID = id
            basicSecret = secret
        }
        bodyID = try body.single("client_id")
        bodySecret = try body.single("client_secret")
    }
}
