import Crypto
import Foundation
import Logging

/// The OpenID provider: authorization, token and userinfo endpoints as plain functions
/// over parameters. The HTTP layer (Portal) parses requests and renders results.
public struct Provider: Sendable {
    public let issuer: String
    public let policy: TokenPolicy
    public let store: any Storage
    public let clients: ClientRegistry
    public let keys: KeyManager
    public let minter: TokenMinter
    public let auditor: Auditor
    let authenticators: [String: any Authenticator]
    let clock: any Clock
    let random: any RandomSource
    /// HMAC key from which a refresh token's successor is derived (shared by all replicas).
    let successorMAC: KeyedMAC
    let logger: Logger
    /// How Kubernetes names people; `kubernetesClients` are the audiences kube-apiserver trusts.
    public let kubernetes: KubernetesMapping
    public let kubernetesClients: Set<String>
    /// Thresholds for throttling failed client authentication (the same rule as passwords).
    let loginPolicy: LoginPolicy
    /// The discovery document changes only with the published algorithms: rendered once per set.
    let discoveryCache = RenderCache<[SigningAlgorithm]>()
    /// Successors this replica issued, so their refresh needs no read before its rotation.
    let issuedRefreshTokens = IssuedRefreshTokens()
    /// Fired when back-channel logouts are queued (see `Signout`, `BackchannelSender`).
    public let logoutKick = LogoutKick()
    /// Who must sign in with a second factor; a refresh of a session without one stops once it is required.
    let mfa: MFAPolicy
    let adminGroups: Set<String>

    public init(issuer: String, policy: TokenPolicy, store: any Storage, clients: ClientRegistry, keys: KeyManager,
                authenticators: [any Authenticator], successorKey: SymmetricKey, clock: any Clock, random: any RandomSource,
                logger: Logger, kubernetes: KubernetesMapping = .init(), kubernetesClients: Set<String> = ["kubernetes"], loginPolicy: LoginPolicy = .init(),
                mfa: MFAPolicy = .init(), adminGroups: Set<String> = []) {
        self.kubernetes = kubernetes; self.kubernetesClients = kubernetesClients; self.loginPolicy = loginPolicy
        self.mfa = mfa; self.adminGroups = adminGroups
        self.issuer = issuer; self.policy = policy; self.store = store; self.clients = clients; self.keys = keys
        self.minter = TokenMinter(issuer: issuer, keys: keys, policy: policy, accessTokens: AccessTokenCodec(secret: successorKey))
        self.auditor = Auditor(store: store, clock: clock, logger: logger)
        var byMethod: [String: any Authenticator] = [:]
        for a in authenticators { byMethod[a.method] = a }
        self.authenticators = byMethod
        self.successorMAC = KeyedMAC(successorKey); self.clock = clock; self.random = random; self.logger = logger
    }

    public var now: Date { clock.now() }

    /// The LDAP authenticator, when one is configured.
    public var directory: LDAPAuthenticator? { authenticators["ldap"] as? LDAPAuthenticator }

    // MARK: Discovery (OIDC Discovery §3, RFC 8414)

    public func discoveryJSON() async -> String {
        let algorithms = keys.publishedAlgorithms()
        return discoveryCache.value(for: algorithms) { renderDiscovery(algorithms) }
    }

    func renderDiscovery(_ algorithms: [SigningAlgorithm]) -> String {
        var w = JSONObjectWriter()
        w.add("issuer", issuer)
        w.add("authorization_endpoint", issuer + "/authorize")
        w.add("token_endpoint", issuer + "/token")
        w.add("userinfo_endpoint", issuer + "/userinfo")
        w.add("jwks_uri", issuer + "/keys")
        w.add("device_authorization_endpoint", issuer + "/device/code")
        w.add("end_session_endpoint", issuer + "/end-session")
        w.add("revocation_endpoint", issuer + "/revoke")
        w.add("revocation_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_post", "none"])
        w.add("introspection_endpoint", issuer + "/introspect")
        w.add("introspection_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_post"])
        w.add("response_types_supported", ["code"])
        w.add("response_modes_supported", ["query"])
        w.add("grant_types_supported", ["authorization_code", "refresh_token", Client.deviceCodeGrant, "urn:ietf:params:oauth:grant-type:token-exchange"])
        w.add("subject_types_supported", ["public"])
        w.add("id_token_signing_alg_values_supported", algorithms.map(\.rawValue))
        w.add("scopes_supported", ["openid", "profile", "email", "groups", "offline_access"])
        w.add("token_endpoint_auth_methods_supported", ["client_secret_basic", "client_secret_post", "none"])
        w.add("code_challenge_methods_supported", ["S256"])
        w.add("claims_supported", ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "preferred_username",
                                   "name", "email", "email_verified", "groups", "sid", "amr", "acr"])
        w.add("prompt_values_supported", ["none", "login"])
        w.add("authorization_response_iss_parameter_supported", true)
        w.add("request_parameter_supported", false)
        w.add("request_uri_parameter_supported", false)
        w.add("claims_parameter_supported", false)
        w.add("backchannel_logout_supported", true)
        w.add("backchannel_logout_session_supported", true)
        return w.string
    }

    // MARK: Identity helpers

    /// The current identity behind a grant, or nil when the account is gone or disabled.
    public func currentIdentity(userID: String, method: String) async throws -> Identity? {
        let authenticator = authenticators[method] ?? authenticators["password"]
        do {
            return try await authenticator?.revalidate(subject: userID)
        } catch let e as AuthenticatorUnavailable {
            // Not a verdict on the account: the token stays valid and the client may retry (RFC 6749 §4.1.2.1).
            logger.error("authenticator unavailable during revalidation", metadata: ["method": "\(method)", "error": "\(e)"])
            throw OAuthError.temporarilyUnavailable("the account directory cannot be reached; try again")
        }
    }

    func newToken() -> String { random.token(byteCount: 32) }

    /// Tokens the provider issues are exactly 43 base64url characters (256 bits); anything else
    /// is refused without a database round trip.
    static func looksLikeToken(_ t: String) -> Bool { t.utf8.count == 43 && Base64URL.decode(t) != nil }

    func successor(of token: String) -> String {
        let mac = successorMAC.code(Array(("refresh-successor\u{0}" + token).utf8))
        return Base64URL.encode(Array(mac))
    }
}

/// One rendered document per key, behind a lock (read on every discovery request).
final class RenderCache<Key: Hashable & Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var rendered: [Key: String] = [:]

    func value(for key: Key, render: () -> String) -> String {
        lock.lock()
        if let v = rendered[key] { lock.unlock(); return v }
        lock.unlock()
        let v = render()
        lock.lock()
        if rendered.count > 16 { rendered = [:] }
        rendered[key] = v
        lock.unlock()
        return v
    }
}
