import Foundation

/// A local account, or the local shadow of a directory account.
public struct User: Sendable, Equatable {
    /// Stable, opaque subject (`sub`): never the username or the email.
    public var id: String
    /// Canonical login name (trimmed, lower case).
    public var username: String
    public var displayName: String
    public var email: String
    public var emailVerified: Bool
    public var groups: [String]
    public var isAdmin: Bool
    public var disabled: Bool
    /// bcrypt hash, or nil for an account that cannot log in with a local password.
    public var passwordHash: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, username: String, displayName: String = "", email: String = "", emailVerified: Bool = false,
                groups: [String] = [], isAdmin: Bool = false, disabled: Bool = false, passwordHash: String? = nil,
                createdAt: Date, updatedAt: Date? = nil) {
        self.id = id; self.username = username; self.displayName = displayName; self.email = email
        self.emailVerified = emailVerified; self.groups = groups; self.isAdmin = isAdmin; self.disabled = disabled
        self.passwordHash = passwordHash; self.createdAt = createdAt; self.updatedAt = updatedAt ?? createdAt
    }
}

/// An OAuth client registered in the database (config-declared clients live in memory).
public struct Client: Sendable, Equatable {
    public var id: String
    public var name: String
    public var redirectURIs: [String]
    public var isPublic: Bool
    /// "sha256$salt$hex" for confidential clients; nil for public ones.
    public var secretHash: String?
    public var createdAt: Date
    /// Where RP-initiated logout may send the browser back to (exact match).
    public var postLogoutRedirectURIs: [String]
    /// OIDC Back-Channel Logout: where logout tokens are POSTed ("" for none).
    public var backchannelLogoutURI: String
    /// RFC 7662: may introspect tokens issued to other clients (a resource server).
    public var introspectAll: Bool
    /// The grants the token endpoint accepts from this client (RFC 7591 `grant_types`).
    public var grantTypes: [String]

    public static let deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"
    public static let defaultGrantTypes = ["authorization_code", "refresh_token"]

    public init(id: String, name: String, redirectURIs: [String], isPublic: Bool, secretHash: String?, createdAt: Date,
                postLogoutRedirectURIs: [String] = [], backchannelLogoutURI: String = "", introspectAll: Bool = false,
                grantTypes: [String] = Client.defaultGrantTypes) {
        self.id = id; self.name = name; self.redirectURIs = redirectURIs; self.isPublic = isPublic
        self.secretHash = secretHash; self.createdAt = createdAt
        self.postLogoutRedirectURIs = postLogoutRedirectURIs; self.backchannelLogoutURI = backchannelLogoutURI; self.introspectAll = introspectAll
        self.grantTypes = grantTypes
    }

    public func allows(_ grantType: String) -> Bool { grantTypes.contains(grantType) }
}

/// Who authenticated, when and how: carried from login into codes and refresh families.
public struct Grant: Sendable, Equatable {
    public var userID: String
    public var clientID: String
    public var scopes: [String]
    public var authTime: Date
    /// "password", "ldap", "kerberos" …
    public var authMethod: String
    /// The portal browser session (`LoginSession.sid`) the grant came from; the id_token's `sid`.
    public var sessionID: String
    /// RFC 8176 methods of the login the grant came from (the id_token's `amr`, kept through refreshes).
    public var amr: [String]

    public init(userID: String, clientID: String, scopes: [String], authTime: Date, authMethod: String, sessionID: String = "",
                amr: [String] = []) {
        self.userID = userID; self.clientID = clientID; self.scopes = scopes; self.authTime = authTime; self.authMethod = authMethod
        self.sessionID = sessionID; self.amr = amr
    }
}

public struct AuthorizationCode: Sendable, Equatable {
    /// SHA-256 of the code; the code itself is never stored.
    public var hash: String
    public var grant: Grant
    public var redirectURI: String
    public var nonce: String?
    public var codeChallenge: String?
    public var createdAt: Date
    public var expiresAt: Date
    public var usedAt: Date?
    /// The refresh family the first redemption started (revoked if the code is replayed).
    public var familyID: String?

    public init(hash: String, grant: Grant, redirectURI: String, nonce: String?, codeChallenge: String?,
                createdAt: Date, expiresAt: Date, usedAt: Date? = nil, familyID: String? = nil) {
        self.hash = hash; self.grant = grant; self.redirectURI = redirectURI; self.nonce = nonce
        self.codeChallenge = codeChallenge; self.createdAt = createdAt; self.expiresAt = expiresAt
        self.usedAt = usedAt; self.familyID = familyID
    }
}

/// One login on one device: the chain of refresh tokens that rotate from it.
public struct RefreshFamily: Sendable, Equatable {
    public var id: String
    public var grant: Grant
    public var createdAt: Date
    /// Absolute end of the family, whatever the activity.
    public var expiresAt: Date
    public var lastUsedAt: Date
    public var revokedAt: Date?
    public var revokeReason: String?
    /// The client address the family was started from ("" when unknown, or older than this field).
    public var address: String
    /// The User-Agent header of the request that started it ("" when unknown); see `DeviceName`.
    public var userAgent: String
    /// What started it: "kubectl" (the kubectl page), "download" (a kubeconfig download), "signin" (a client's sign-in).
    public var purpose: String
    /// A name the person gave the device ("" for none).
    public var label: String

    public init(id: String, grant: Grant, createdAt: Date, expiresAt: Date, lastUsedAt: Date? = nil,
                revokedAt: Date? = nil, revokeReason: String? = nil, address: String = "", userAgent: String = "",
                purpose: String = "", label: String = "") {
        self.id = id; self.grant = grant; self.createdAt = createdAt; self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt ?? createdAt; self.revokedAt = revokedAt; self.revokeReason = revokeReason
        self.address = address; self.userAgent = userAgent; self.purpose = purpose; self.label = label
    }
}

public struct RefreshToken: Sendable, Equatable {
    /// SHA-256 of the token.
    public var hash: String
    public var familyID: String
    public var clientID: String
    public var createdAt: Date
    /// Idle deadline: the token is dead after this even if never used.
    public var idleExpiresAt: Date
    public var usedAt: Date?

    public init(hash: String, familyID: String, clientID: String, createdAt: Date, idleExpiresAt: Date, usedAt: Date? = nil) {
        self.hash = hash; self.familyID = familyID; self.clientID = clientID; self.createdAt = createdAt
        self.idleExpiresAt = idleExpiresAt; self.usedAt = usedAt
    }
}

/// A browser's logged-in session (cookie value stored as a hash).
public struct LoginSession: Sendable, Equatable {
    public var hash: String
    /// Public, random id of the session: the `sid` of id_tokens and logout tokens, and the handle
    /// pages and the CLI end it by. Knowing it grants nothing.
    public var sid: String
    public var userID: String
    public var authTime: Date
    public var authMethod: String
    public var createdAt: Date
    /// Absolute end.
    public var expiresAt: Date
    /// Last request seen (stamped at most about once a minute); the idle timeout counts from it.
    public var lastSeenAt: Date
    public var address: String
    public var userAgent: String
    /// RFC 8176 methods of this login (`pwd`, `otp`, `hwk`, `mfa` …), grown by a later second factor.
    public var amr: [String]
    /// When this session last confirmed a second factor (sign-in or step-up); nil for never.
    public var factorAt: Date?

    public init(hash: String, sid: String = "", userID: String, authTime: Date, authMethod: String, createdAt: Date, expiresAt: Date,
                lastSeenAt: Date? = nil, address: String = "", userAgent: String = "", amr: [String] = [], factorAt: Date? = nil) {
        self.hash = hash; self.sid = sid.isEmpty ? String(hash.prefix(32)) : sid; self.userID = userID; self.authTime = authTime
        self.authMethod = authMethod; self.createdAt = createdAt; self.expiresAt = expiresAt; self.lastSeenAt = lastSeenAt ?? createdAt
        self.address = address; self.userAgent = userAgent; self.amr = amr; self.factorAt = factorAt
    }
}

/// One back-channel logout token to deliver (OIDC Back-Channel Logout 1.0 §2.5), retried until `deadline`.
/// The token itself is signed at each attempt; only who and where is stored.
public struct LogoutDelivery: Sendable, Equatable {
    public var id: String
    public var clientID: String
    public var uri: String
    public var subject: String
    public var sid: String
    public var createdAt: Date
    public var nextAttemptAt: Date
    public var attempts: Int
    public var deadline: Date

    public init(id: String, clientID: String, uri: String, subject: String, sid: String, createdAt: Date, nextAttemptAt: Date,
                attempts: Int = 0, deadline: Date) {
        self.id = id; self.clientID = clientID; self.uri = uri; self.subject = subject; self.sid = sid; self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt; self.attempts = attempts; self.deadline = deadline
    }
}

/// An authorization request waiting for the user to log in, bound to the browser that started it.
public struct PendingAuthorization: Sendable, Equatable {
    public var id: String
    /// SHA-256 of the browser-binding cookie that started it.
    public var browserHash: String
    public var request: AuthorizationRequest
    public var createdAt: Date
    public var expiresAt: Date

    public init(id: String, browserHash: String, request: AuthorizationRequest, createdAt: Date, expiresAt: Date) {
        self.id = id; self.browserHash = browserHash; self.request = request; self.createdAt = createdAt; self.expiresAt = expiresAt
    }
}

/// A signing key. The private half is stored sealed (see `KeySealer`).
public struct SigningKeyRecord: Sendable, Equatable {
    public var kid: String
    public var algorithm: SigningAlgorithm
    /// Sealed private key (PKCS#8 DER inside).
    public var sealedPrivateKey: String
    /// Public JWK as JSON.
    public var publicJWK: String
    public var createdAt: Date
    /// From this instant the key may sign.
    public var activatesAt: Date
    /// From this instant the key no longer signs (set when a successor takes over).
    public var retiresAt: Date?
    /// From this instant the key is gone from JWKS (every token it signed has expired).
    public var expiresAt: Date?

    public init(kid: String, algorithm: SigningAlgorithm, sealedPrivateKey: String, publicJWK: String, createdAt: Date,
                activatesAt: Date, retiresAt: Date? = nil, expiresAt: Date? = nil) {
        self.kid = kid; self.algorithm = algorithm; self.sealedPrivateKey = sealedPrivateKey; self.publicJWK = publicJWK
        self.createdAt = createdAt; self.activatesAt = activatesAt; self.retiresAt = retiresAt; self.expiresAt = expiresAt
    }
}

public struct SetupToken: Sendable, Equatable {
    public var hash: String
    public var createdAt: Date
    public var expiresAt: Date
    public var usedAt: Date?

    public init(hash: String, createdAt: Date, expiresAt: Date, usedAt: Date? = nil) {
        self.hash = hash; self.createdAt = createdAt; self.expiresAt = expiresAt; self.usedAt = usedAt
    }
}

/// Failed-login bookkeeping for one throttle key ("user:alice", "addr:10.0.0.1").
public struct ThrottleState: Sendable, Equatable {
    public var key: String
    public var failures: Int
    public var windowStart: Date
    public var lockedUntil: Date?

    public init(key: String, failures: Int, windowStart: Date, lockedUntil: Date? = nil) {
        self.key = key; self.failures = failures; self.windowStart = windowStart; self.lockedUntil = lockedUntil
    }
}

public struct AuditEvent: Sendable, Equatable {
    public var id: Int64?
    public var time: Date
    /// e.g. "login.success", "login.failure", "token.issue", "token.refresh", "token.replay", "admin.user.add".
    public var type: String
    /// Who did it: a username, "cli", "system", or "" when unknown.
    public var actor: String
    /// What it was done to (a user, a client, a family id …).
    public var subject: String
    public var clientID: String
    public var remoteAddress: String
    public var success: Bool
    /// Free-form details, `key=value` pairs; never a secret.
    public var details: [String: String]

    public init(id: Int64? = nil, time: Date, type: String, actor: String = "", subject: String = "", clientID: String = "",
                remoteAddress: String = "", success: Bool = true, details: [String: String] = [:]) {
        self.id = id; self.time = time; self.type = type; self.actor = actor; self.subject = subject
        self.clientID = clientID; self.remoteAddress = remoteAddress; self.success = success; self.details = details
    }
}

/// One page of a user search.
public struct UserPage: Sendable, Equatable {
    public var users: [User]
    public var total: Int
    public init(users: [User], total: Int) { self.users = users; self.total = total }
}

public struct AuditQuery: Sendable {
    public var type: String?
    public var actor: String?
    public var subject: String?
    /// Events at or after this instant (inclusive).
    public var since: Date?
    /// Events strictly before this instant (exclusive).
    public var until: Date?
    public var before: Int64?
    public var limit: Int

    public init(type: String? = nil, actor: String? = nil, subject: String? = nil, since: Date? = nil, until: Date? = nil,
                before: Int64? = nil, limit: Int = 100) {
        self.type = type; self.actor = actor; self.subject = subject; self.since = since; self.until = until
        self.before = before; self.limit = limit
    }
}

/// A secret shown once: stored sealed by the caller after a POST, taken (and deleted) by the GET
/// that follows the redirect. Storage never interprets `sealed`.
public struct Reveal: Sendable, Equatable {
    public var id: String
    /// SHA-256 of the browser-binding cookie of the browser that may see it.
    public var browserHash: String
    /// What is revealed ("credential", "robot" …), for the page that shows it.
    public var kind: String
    /// Opaque ciphertext made by the caller.
    public var sealed: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(id: String, browserHash: String, kind: String, sealed: String, createdAt: Date, expiresAt: Date) {
        self.id = id; self.browserHash = browserHash; self.kind = kind; self.sealed = sealed
        self.createdAt = createdAt; self.expiresAt = expiresAt
    }
}

/// An RFC 8628 device authorization: asked for by a device, decided by a person in a browser,
/// redeemed once by the device. Only the device code's hash is stored; the user code is short
/// and typed by people, so it is stored as is (and unique among live grants).
public struct DeviceGrant: Sendable, Equatable {
    public enum Status: String, Sendable { case pending, approved, denied, redeemed }
    public var deviceHash: String
    public var userCode: String
    public var clientID: String
    public var scopes: [String]
    public var createdAt: Date
    public var expiresAt: Date
    /// Seconds the device must wait between polls (grows by 5 with each `slow_down`).
    public var interval: Int
    public var lastPolledAt: Date?
    public var status: Status
    /// Who decided, how they had signed in, and from which browser session (set at approval).
    public var userID: String
    public var authTime: Date?
    public var authMethod: String
    public var sessionID: String
    /// Where the device asked from.
    public var address: String
    public var userAgent: String
    public var decidedAt: Date?
    /// The approving login's RFC 8176 methods (set at approval).
    public var amr: [String] = []

    public init(deviceHash: String, userCode: String, clientID: String, scopes: [String], createdAt: Date, expiresAt: Date, interval: Int,
                lastPolledAt: Date? = nil, status: Status = .pending, userID: String = "", authTime: Date? = nil, authMethod: String = "",
                sessionID: String = "", address: String = "", userAgent: String = "", decidedAt: Date? = nil) {
        self.deviceHash = deviceHash; self.userCode = userCode; self.clientID = clientID; self.scopes = scopes; self.createdAt = createdAt
        self.expiresAt = expiresAt; self.interval = interval; self.lastPolledAt = lastPolledAt; self.status = status; self.userID = userID
        self.authTime = authTime; self.authMethod = authMethod; self.sessionID = sessionID; self.address = address; self.userAgent = userAgent
        self.decidedAt = decidedAt
    }
}

/// What a device's poll found (RFC 8628 §3.5).
public enum DevicePoll: Sendable, Equatable {
    case notFound
    case expired
    /// Polled sooner than its interval; the interval is now `interval`.
    case slowDown(interval: Int)
    case pending
    case denied
    /// Approved and not yet redeemed: the caller redeems it with `redeemDeviceGrant`.
    case approved(DeviceGrant)
    case redeemed
}
