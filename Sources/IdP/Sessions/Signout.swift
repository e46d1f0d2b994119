import Foundation

/// What a sign-out ends besides the browser session itself.
public enum SignoutScope: String, Sendable {
    /// The browser session and the applications signed in through it (they are told by back-channel logout).
    case browser
    /// That, and every kubectl session (refresh family of a Kubernetes client) started from this browser.
    case all
}

/// Ending sessions: browser sessions, the refresh families they started, and the back-channel
/// logout tokens owed to the clients whose families ended. Every path that ends something (sign-out,
/// RP-initiated logout, "My devices", the admin pages, the CLI, a password change) comes here, so
/// what ends and who is told is decided once.
public struct Signout: Sendable {
    let provider: Provider
    /// How long a back-channel logout is retried before it is given up (and audited as failed).
    public static let deliveryWindow: TimeInterval = 600

    public init(provider: Provider) { self.provider = provider }

    var store: any Storage { provider.store }

    public struct Ended: Sendable, Equatable {
        public var sessions = 0
        public var families = 0
        public init() {}
    }

    /// Ends one browser session: it is deleted; its applications' families end (and those
    /// clients are told), and with `.all` its kubectl families too. `except` names a client that
    /// asked for this itself (RP-initiated logout) and is not told again.
    /// The session goes last: if anything before fails, it is still there to be ended again.
    @discardableResult
    public func endBrowserSession(_ s: LoginSession, scope: SignoutScope, reason: String, except: String? = nil) async throws -> Ended {
        let families = try await store.families(sessionID: s.sid).filter { f in
            f.grant.userID == s.userID && (scope == .all || !provider.kubernetesClients.contains(f.grant.clientID))
        }
        var ended = try await revoke(families, reason: reason, except: except)
        try await store.deleteSession(hash: s.hash)
        ended.sessions = 1
        return ended
    }

    /// Ends one refresh family (My devices, the admin pages, the CLI); its client is told when it
    /// takes back-channel logouts. False when it had already ended.
    public func endFamily(_ f: RefreshFamily, reason: String) async throws -> Bool {
        try await revoke([f], reason: reason, except: nil).families == 1
    }

    /// Ends everything a person has: every browser session but the one with hash `keeping`, and
    /// every refresh family (a suspected compromise: password change, "sign out everywhere").
    @discardableResult
    public func endEverywhere(userID: String, keeping: String? = nil, reason: String) async throws -> Ended {
        // Sessions first, so none can start a family meanwhile (a code needs its session; see redeemCode).
        let sessions = try await store.deleteSessions(userID: userID, except: keeping)
        let families = try await store.activeFamilies(userID: userID, now: provider.now)
        var ended = try await revoke(families, reason: reason, except: nil)
        ended.sessions = sessions
        return ended
    }

    /// Revokes each live family and, in the same transaction, queues one logout token per (client,
    /// session) for clients that registered a back-channel logout URI.
    func revoke(_ families: [RefreshFamily], reason: String, except: String?) async throws -> Ended {
        let now = provider.now
        let live = families.filter { $0.revokedAt == nil && $0.expiresAt > now }
        var byKey: [String: LogoutDelivery] = [:], logouts: [String: LogoutDelivery] = [:]
        var uris: [String: String] = [:]
        for f in live where f.grant.clientID != except {
            let uri: String
            if let known = uris[f.grant.clientID] { uri = known } else {
                uri = try await provider.clients.client(id: f.grant.clientID)?.backchannelLogoutURI ?? ""
                uris[f.grant.clientID] = uri
            }
            guard !uri.isEmpty else { continue }
            let key = f.grant.clientID + "\u{0}" + Self.sid(of: f)
            let d = byKey[key] ?? LogoutDelivery(id: provider.random.token(byteCount: 16), clientID: f.grant.clientID, uri: uri,
                                                 subject: f.grant.userID, sid: Self.sid(of: f), createdAt: now, nextAttemptAt: now,
                                                 deadline: now + Self.deliveryWindow)
            byKey[key] = d
            logouts[f.id] = d
        }
        let revoked = try await store.endFamilies(ids: live.map(\.id), now: now, reason: reason, logouts: logouts)
        if revoked.contains(where: { logouts[$0] != nil }) { provider.logoutKick.fire() }
        var ended = Ended()
        ended.families = revoked.count
        return ended
    }

    /// The `sid` the client saw in its id_tokens (see `TokenMinter.mint`).
    static func sid(of f: RefreshFamily) -> String { f.grant.sessionID.isEmpty ? f.id : f.grant.sessionID }
}

/// Wakes the back-channel sender when logouts were queued (set by whoever runs the sender).
public final class LogoutKick: @unchecked Sendable {
    private let lock = NSLock()
    private var handler: (@Sendable () -> Void)?

    public init() {}

    public func set(_ h: @escaping @Sendable () -> Void) {
        lock.lock(); handler = h; lock.unlock()
    }

    func fire() {
        lock.lock(); let h = handler; lock.unlock()
        h?()
    }
}
