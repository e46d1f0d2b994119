import Foundation

public struct StorageError: Error, CustomStringConvertible, Equatable {
    enum Kind: Equatable { case conflict, notFound, unavailable }
    let kind: Kind
    public let message: String

    /// A record with the same key (id, username, kid …) exists.
    public static func conflict(_ what: String) -> StorageError { .init(kind: .conflict, message: what) }
    public static func notFound(_ what: String) -> StorageError { .init(kind: .notFound, message: what) }
    /// The database cannot be reached or answered with an error.
    public static func unavailable(_ why: String) -> StorageError { .init(kind: .unavailable, message: why) }

    public var isConflict: Bool { kind == .conflict }
    public var isNotFound: Bool { kind == .notFound }
    /// The database cannot be reached (or answered with a server error): a 503, never a 500.
    public var isUnavailable: Bool { kind == .unavailable }
    public var description: String { "storage: \(kind): \(message)" }
}

// The storage contract. Every persisted record goes through these roles.
//
// Rules every implementation follows (and the conformance suite checks):
// - Single use is enforced by the database with a conditional update inside one
//   transaction (or a single DELETE … RETURNING), so it holds across processes and
//   replicas — never by an in-process lock alone.
// - `now` is always passed in; implementations never read a clock.
// - Secrets are never handed to storage: only their SHA-256 (`hash`) is.
// - A method that fails throws and leaves nothing half-written.

public protocol UserStore: Sendable {
    /// Inserts a user. Throws `.conflict` when the id or the username is taken.
    func createUser(_ user: User) async throws
    func user(id: String) async throws -> User?
    /// Looks up by canonical username (exact match).
    func user(username: String) async throws -> User?
    /// Atomic read-modify-write of one user; `body` sees the current row. Throws `.notFound`.
    /// Changing the username to one that is taken throws `.conflict`.
    @discardableResult
    func updateUser(id: String, _ body: @Sendable (inout User) throws -> Void) async throws -> User
    /// Deletes the user; returns false when there was none.
    func deleteUser(id: String) async throws -> Bool
    func listUsers() async throws -> [User]
    /// Users whose name, display name, email or a group contains `query` (case-insensitive; empty: all),
    /// by username, one page of at most `limit` after `offset`, and how many match in all.
    func searchUsers(_ query: String, limit: Int, offset: Int) async throws -> UserPage
    /// True when at least one enabled admin exists.
    func adminExists() async throws -> Bool
}

public protocol ClientStore: Sendable {
    /// Throws `.conflict` when the id is taken.
    func createClient(_ client: Client) async throws
    func client(id: String) async throws -> Client?
    func listClients() async throws -> [Client]
    func deleteClient(id: String) async throws -> Bool
}

public enum CodeRedemption: Sendable, Equatable {
    /// This call consumed the code and stored `family` with its first refresh token.
    case redeemed
    /// The code had been redeemed before; `familyID` is what that first redemption started.
    case alreadyUsed(familyID: String?)
    case notFound
}

public protocol CodeStore: Sendable {
    func createCode(_ code: AuthorizationCode) async throws
    func code(hash: String) async throws -> AuthorizationCode?
    /// In one transaction: marks the code used (only if it was unused), records the
    /// family on it, and inserts `family` and its first `token`. Exactly one of any
    /// number of concurrent callers gets `.redeemed`.
    func redeemCode(hash: String, now: Date, family: RefreshFamily, firstToken: RefreshToken) async throws -> CodeRedemption
}

public enum RefreshRotation: Sendable, Equatable {
    /// This call consumed the token; the successor is stored.
    case rotated
    /// The token had already been consumed (by another caller, or earlier), at `usedAt`.
    case alreadyUsed(usedAt: Date)
    case notFound
}

public protocol RefreshStore: Sendable {
    /// The token and its family, or nil.
    func refreshToken(hash: String) async throws -> (RefreshToken, RefreshFamily)?
    /// In one transaction: marks the token used only if unused, inserts `successor`
    /// and stamps the family's `lastUsedAt`. Exactly one concurrent caller gets `.rotated`.
    /// Never rotates a token whose family is revoked (returns `.alreadyUsed` or the family check fails first).
    /// `audit`, when given, is appended in the same transaction if (and only if) the token rotated.
    func rotateRefreshToken(hash: String, now: Date, successor: RefreshToken, audit: AuditEvent?) async throws -> RefreshRotation
    /// The same rotation, handed over at once: the caller works meanwhile and awaits the outcome.
    /// Stores that batch rotations queue it before returning (the default runs it in a task).
    func beginRefreshRotation(hash: String, now: Date, successor: RefreshToken, audit: AuditEvent?) -> PendingRefreshRotation
    /// Inserts a new family and its first token in one transaction.
    func startFamily(_ family: RefreshFamily, firstToken: RefreshToken) async throws
    /// Whether `hash` is stored and still unused.
    func refreshTokenIsUnused(hash: String) async throws -> Bool
    func family(id: String) async throws -> RefreshFamily?
    /// Marks the family revoked (once). Returns true when this call revoked it.
    @discardableResult
    func revokeFamily(id: String, now: Date, reason: String) async throws -> Bool
    /// Revokes every live family of a user; returns how many.
    @discardableResult
    func revokeFamilies(userID: String, now: Date, reason: String) async throws -> Int
    /// Live (unrevoked, unexpired) families, newest first; optionally of one user.
    func activeFamilies(userID: String?, now: Date) async throws -> [RefreshFamily]
    /// Every family (revoked or not) started from one browser session (`Grant.sessionID`).
    func families(sessionID: String) async throws -> [RefreshFamily]
    /// Sets the person's label of their family; false when it is not theirs or not found.
    func setFamilyLabel(id: String, userID: String, label: String) async throws -> Bool
}

public protocol SessionStore: Sendable {
    func createSession(_ session: LoginSession) async throws
    func session(hash: String) async throws -> LoginSession?
    func deleteSession(hash: String) async throws
    /// Ends every browser session of a person but the one with hash `except`; returns how many.
    @discardableResult
    func deleteSessions(userID: String, except: String?) async throws -> Int
    /// A person's live portal sign-ins (browser sessions), newest first.
    func sessions(userID: String, now: Date) async throws -> [LoginSession]
    func session(sid: String) async throws -> LoginSession?
    /// Stamps activity (for the idle timeout).
    func touchSession(hash: String, now: Date) async throws
    func createPendingAuthorization(_ pending: PendingAuthorization) async throws
    func pendingAuthorization(id: String) async throws -> PendingAuthorization?
    func deletePendingAuthorization(id: String) async throws
}

public protocol KeyStore: Sendable {
    func signingKeys() async throws -> [SigningKeyRecord]
    /// Throws `.conflict` when the kid exists.
    func insertSigningKey(_ key: SigningKeyRecord) async throws
    /// Replaces the stored record with the same kid (timestamps, resealed private key). Throws `.notFound`.
    func updateSigningKey(_ key: SigningKeyRecord) async throws
    func deleteSigningKey(kid: String) async throws
    /// A named lease for work only one replica should do at a time (key rotation, GC).
    /// Returns true when `holder` holds it until `until`.
    func acquireLease(name: String, holder: String, now: Date, until: Date) async throws -> Bool
    /// Gives the lease up early (only if `holder` holds it).
    func releaseLease(name: String, holder: String) async throws
    /// A process-wide secret shared by all replicas (e.g. the refresh-successor HMAC key):
    /// stores `proposed` under `name` if nothing is stored yet, and returns what is stored.
    /// Concurrent callers all get the same value.
    func namedSecret(_ name: String, proposed: String) async throws -> String
    /// Compare-and-swap: replaces the value only while it is still `old` (resealing). False when it changed.
    func replaceNamedSecret(_ name: String, old: String, new: String) async throws -> Bool
}

public enum SetupCompletion: Sendable, Equatable { case created, invalidToken, adminExists }

public protocol SetupStore: Sendable {
    func createSetupToken(_ token: SetupToken) async throws
    func setupToken(hash: String) async throws -> SetupToken?
    /// In one transaction: checks the token is unused and unexpired and that no admin
    /// exists, marks it used and inserts `admin`.
    func completeSetup(hash: String, now: Date, admin: User) async throws -> SetupCompletion
}

public protocol ThrottleStore: Sendable {
    func throttleState(key: String) async throws -> ThrottleState?
    /// Atomically counts one failure: a new window starts when the old one (`window` long)
    /// has passed; reaching `maxFailures` sets `lockedUntil = now + lockout`.
    func recordFailure(key: String, now: Date, window: TimeInterval, maxFailures: Int, lockout: TimeInterval) async throws -> ThrottleState
    func clearThrottle(key: String) async throws
    /// Every key with failures counted (at most 100,000, by key), for the admin view and the CLI.
    func throttles(now: Date) async throws -> [ThrottleState]
    /// Records a successful sign-in of `account` from `address` (insert or refresh).
    func rememberFamiliar(account: String, address: String, now: Date) async throws
    /// Whether `account` signed in from `address` at or after `since`.
    func isFamiliar(account: String, address: String, since: Date) async throws -> Bool
}

public protocol AuditStore: Sendable {
    func appendAudit(_ event: AuditEvent) async throws
    /// Newest first, filtered (type, actor, subject, `since` inclusive, `until` exclusive), paginated by `before` id.
    func auditEvents(_ query: AuditQuery) async throws -> [AuditEvent]
    /// The distinct event types present in the log, sorted.
    func auditEventTypes() async throws -> [String]
}

public protocol RevealStore: Sendable {
    /// Throws `.conflict` when the id is taken.
    func createReveal(_ reveal: Reveal) async throws
    /// Deletes the reveal and returns it when it was stored and unexpired (`expiresAt > now`);
    /// an expired one is deleted too, and nil returned. Exactly one of any number of concurrent
    /// callers, on any replica, gets it. Only a caller presenting the reveal's `browserHash` takes
    /// it: anyone else matches no row, gets nil, and leaves it for its owner.
    func takeReveal(id: String, browserHash: String, now: Date) async throws -> Reveal?
}

public protocol LogoutStore: Sendable {
    /// In one transaction: revokes each family of `ids` still live, and queues the logout owed for
    /// each family this call revoked (`logouts` by family id; one delivery may be owed by several).
    /// Returns the ids this call revoked. Nothing is half-done: no revoked family without its logout.
    func endFamilies(ids: [String], now: Date, reason: String, logouts: [String: LogoutDelivery]) async throws -> [String]
    /// Deliveries whose next attempt is due (and whose deadline has not passed), oldest first.
    func dueLogouts(now: Date, limit: Int) async throws -> [LogoutDelivery]
    /// Claims one attempt: moves the next attempt to `nextAttemptAt` only while `attempts` is still
    /// what the caller read. Exactly one replica wins each attempt.
    func claimLogout(id: String, attempts: Int, nextAttemptAt: Date) async throws -> Bool
    func deleteLogout(id: String) async throws
}

public protocol DeviceStore: Sendable {
    /// Throws `.conflict` when the user code (or the device hash) is taken.
    func createDeviceGrant(_ grant: DeviceGrant) async throws
    /// A grant by its user code (any status), or nil.
    func deviceGrant(userCode: String) async throws -> DeviceGrant?
    /// Approves (with who and how) or denies a pending, unexpired grant; false when it was not pending
    /// or has expired. Exactly one of concurrent deciders wins.
    func decideDeviceGrant(userCode: String, now: Date, approve: Bool, userID: String, authTime: Date, authMethod: String,
                           sessionID: String, amr: [String]) async throws -> Bool
    /// One poll: records it, and answers `slowDown` (growing the interval by 5 s) when it came sooner
    /// than the interval after the previous one.
    /// Another client's device code is `notFound`.
    func pollDeviceGrant(deviceHash: String, clientID: String, now: Date) async throws -> DevicePoll
    /// In one transaction: marks the approved grant redeemed (only if approved) and starts `family`
    /// with its first token. False when another poll redeemed it first.
    func redeemDeviceGrant(deviceHash: String, family: RefreshFamily, firstToken: RefreshToken) async throws -> Bool
}

public protocol MaintenanceStore: Sendable {
    /// Deletes expired codes, pending authorizations, sessions, setup tokens, reveals, dead refresh
    /// tokens and families, stale throttle rows and keys gone from JWKS. Returns rows removed.
    func purgeExpired(now: Date) async throws -> Int
    /// Cheap round trip for readiness probes.
    func ping() async throws
}

/// Everything the portal persists.
public typealias Storage = UserStore & ClientStore & CodeStore & RefreshStore & SessionStore & KeyStore & SetupStore
    & ThrottleStore & AuditStore & MaintenanceStore & CredentialStore & RobotStore & RevealStore & LogoutStore & DeviceStore
    & FactorStore

extension RefreshStore {
    public func rotateRefreshToken(hash: String, now: Date, successor: RefreshToken) async throws -> RefreshRotation {
        try await rotateRefreshToken(hash: hash, now: now, successor: successor, audit: nil)
    }

    public func beginRefreshRotation(hash: String, now: Date, successor: RefreshToken, audit: AuditEvent?) -> PendingRefreshRotation {
        let pending = PendingRefreshRotation()
        Task {
            do { pending.settle(.success(try await rotateRefreshToken(hash: hash, now: now, successor: successor, audit: audit))) }
            catch { pending.settle(.failure(error)) }
        }
        return pending
    }
}

extension DeviceStore {
    public func decideDeviceGrant(userCode: String, now: Date, approve: Bool, userID: String, authTime: Date, authMethod: String,
                                  sessionID: String) async throws -> Bool {
        try await decideDeviceGrant(userCode: userCode, now: now, approve: approve, userID: userID, authTime: authTime,
                                    authMethod: authMethod, sessionID: sessionID, amr: [])
    }
}
