import Foundation
import Logging

/// Sends a logout token to a relying party. Implemented by the HTTP layer; returns the status code.
public protocol LogoutTransport: Sendable {
    func post(_ url: String, form: String, timeout: TimeInterval) async throws -> Int
}

/// OpenID Connect Back-Channel Logout 1.0: delivers queued logout tokens outside the request path.
///
/// Any replica may deliver a queued logout: each attempt is claimed with a compare-and-swap on the
/// attempt count, so one replica makes it. A network error or a 5xx is retried with backoff (1 s,
/// 2 s, 4 s … at most a minute apart) until `Signout.deliveryWindow` after the logout; a 4xx is the
/// RP refusing the token and is not retried. Every outcome is audited (`logout.backchannel`).
public struct BackchannelSender: Sendable {
    let provider: Provider
    let transport: any LogoutTransport
    let logger: Logger
    public var timeout: TimeInterval = 5

    public init(provider: Provider, transport: any LogoutTransport, logger: Logger) {
        self.provider = provider; self.transport = transport; self.logger = logger
    }

    public static let event = "http://schemas.openid.net/event/backchannel-logout"

    /// A logout token (§2.4): typ `logout+jwt`, `events`, `sid`, `sub`, never a `nonce`; valid two minutes.
    public func logoutToken(_ d: LogoutDelivery, now: Date) throws -> String {
        let key = try provider.keys.signingKey()
        let iat = Int(now.timeIntervalSince1970)
        var w = JSONObjectWriter()
        w.add("iss", provider.issuer)
        w.add("aud", d.clientID)
        w.add("iat", iat)
        w.add("exp", iat + 120)
        w.add("jti", provider.random.token(byteCount: 16))
        w.add("sub", d.subject)
        w.add("sid", d.sid)
        w.addRaw("events", #"{"\#(Self.event)":{}}"#)
        return try JWS.sign(payload: w.data, key: key, type: "logout+jwt")
    }

    /// Delivers every due logout once; returns how many were delivered.
    @discardableResult
    public func deliverDue() async -> Int {
        let now = provider.now
        let due: [LogoutDelivery]
        do { due = try await provider.store.dueLogouts(now: now, limit: 100) } catch {
            logger.error("back-channel logout: cannot read the queue", metadata: ["error": "\(error)"])
            return 0
        }
        var delivered = 0
        await withTaskGroup(of: Bool.self) { group in
            for d in due { group.addTask { await deliver(d, now: now) } }
            for await ok in group where ok { delivered += 1 }
        }
        return delivered
    }

    static func backoff(afterAttempt n: Int) -> TimeInterval { min(60, pow(2, Double(min(n, 6)))) }

    func deliver(_ d: LogoutDelivery, now: Date) async -> Bool {
        // The claim outlasts this attempt's own timeout: no second sender starts while it runs.
        let next = now + timeout + Self.backoff(afterAttempt: d.attempts)
        do {
            guard try await provider.store.claimLogout(id: d.id, attempts: d.attempts, nextAttemptAt: next) else { return false }
        } catch { return false }
        var outcome: String
        do {
            let token = try logoutToken(d, now: now)
            let status = try await transport.post(d.uri, form: FormParameters.encode([("logout_token", token)]), timeout: timeout)
            if (200..<300).contains(status) {
                try? await provider.store.deleteLogout(id: d.id)
                await provider.auditor.record("logout.backchannel", subject: d.subject, clientID: d.clientID,
                                              details: ["sid": d.sid, "attempts": String(d.attempts + 1)])
                return true
            }
            outcome = "HTTP \(status)"
            if (300..<500).contains(status) {
                try? await provider.store.deleteLogout(id: d.id)
                await failed(d, outcome + " (refused by the client; not retried)")
                return false
            }
        } catch {
            outcome = "\(error)"
        }
        if next >= d.deadline {
            try? await provider.store.deleteLogout(id: d.id)
            await failed(d, outcome + " (given up after \(d.attempts + 1) attempts)")
        } else {
            logger.info("back-channel logout failed; will retry", metadata: ["client": "\(d.clientID)", "attempt": "\(d.attempts + 1)", "error": "\(outcome)"])
        }
        return false
    }

    func failed(_ d: LogoutDelivery, _ why: String) async {
        logger.warning("back-channel logout not delivered", metadata: ["client": "\(d.clientID)", "error": "\(why)"])
        await provider.auditor.record("logout.backchannel", subject: d.subject, clientID: d.clientID, success: false,
                                      details: ["sid": d.sid, "error": String(why.prefix(200))])
    }
}
