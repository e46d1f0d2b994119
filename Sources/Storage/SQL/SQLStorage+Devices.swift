import Foundation
import IdP
import SQLKit

// MARK: - RFC 8628 device grants

extension SQLStorage {
    static func deviceGrant(_ r: any SQLRow) throws -> DeviceGrant {
        var g = DeviceGrant(deviceHash: try r.s("device_hash"), userCode: try r.s("user_code"), clientID: try r.s("client_id"), scopes: try r.list("scopes"),
                    createdAt: try r.d("created_at"), expiresAt: try r.d("expires_at"), interval: try r.decode(column: "poll_interval", as: Int.self),
                    lastPolledAt: try r.od("last_polled_at"), status: DeviceGrant.Status(rawValue: try r.s("status")) ?? .denied,
                    userID: try r.s("user_id"), authTime: try r.od("auth_time"), authMethod: try r.s("auth_method"), sessionID: try r.s("session_id"),
                    address: try r.s("address"), userAgent: try r.s("user_agent"), decidedAt: try r.od("decided_at"))
        g.amr = AMR.decode(try r.s("amr"))
        return g
    }

    public func createDeviceGrant(_ g: DeviceGrant) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO device_grants (device_hash, user_code, client_id, scopes, created_at, expires_at, poll_interval, last_polled_at,
                                           status, user_id, auth_time, auth_method, session_id, address, user_agent, decided_at, amr)
                VALUES (\(bind: g.deviceHash), \(bind: g.userCode), \(bind: g.clientID), \(bind: json(g.scopes)), \(bind: t(g.createdAt)),
                        \(bind: t(g.expiresAt)), \(bind: g.interval), \(bind: t(g.lastPolledAt)), \(bind: g.status.rawValue), \(bind: g.userID),
                        \(bind: t(g.authTime)), \(bind: g.authMethod), \(bind: g.sessionID), \(bind: g.address), \(bind: g.userAgent),
                        \(bind: t(g.decidedAt)), \(bind: AMR.encode(g.amr)))
                """).run()
        }
    }

    public func deviceGrant(userCode: String) async throws -> DeviceGrant? {
        try await read { db in
            try await db.raw("SELECT * FROM device_grants WHERE user_code = \(bind: userCode)").first().map(Self.deviceGrant)
        }
    }

    public func decideDeviceGrant(userCode: String, now: Date, approve: Bool, userID: String, authTime: Date, authMethod: String,
                                  sessionID: String, amr: [String]) async throws -> Bool {
        try await run { db in
            try await db.raw("""
                UPDATE device_grants SET status = \(bind: approve ? "approved" : "denied"), user_id = \(bind: userID), auth_time = \(bind: t(authTime)),
                                         auth_method = \(bind: authMethod), session_id = \(bind: sessionID), decided_at = \(bind: t(now)),
                                         amr = \(bind: AMR.encode(amr))
                WHERE user_code = \(bind: userCode) AND status = 'pending' AND expires_at > \(bind: t(now)) RETURNING device_hash
                """).first() != nil
        }
    }

    public func pollDeviceGrant(deviceHash: String, clientID: String, now: Date) async throws -> DevicePoll {
        try await tx { db in
            guard let row = try await db.raw("""
                SELECT * FROM device_grants WHERE device_hash = \(bind: deviceHash) AND client_id = \(bind: clientID)
                """).first() else { return .notFound }
            let g = try Self.deviceGrant(row)
            if g.status == .redeemed { return .redeemed }
            guard g.expiresAt > now else { return .expired }
            // Too soon after the previous poll: slow down (RFC 8628 §3.5: the interval grows by 5 s).
            if g.status == .pending, let last = g.lastPolledAt, now.timeIntervalSince(last) < TimeInterval(g.interval) {
                let interval = g.interval + 5
                try await db.raw("""
                    UPDATE device_grants SET poll_interval = \(bind: interval), last_polled_at = \(bind: t(now)) WHERE device_hash = \(bind: deviceHash)
                    """).run()
                return .slowDown(interval: interval)
            }
            try await db.raw("UPDATE device_grants SET last_polled_at = \(bind: t(now)) WHERE device_hash = \(bind: deviceHash)").run()
            switch g.status {
            case .pending: return .pending
            case .denied: return .denied
            case .approved: return .approved(g)
            case .redeemed: return .redeemed
            }
        }
    }

    public func redeemDeviceGrant(deviceHash: String, family: RefreshFamily, firstToken: RefreshToken) async throws -> Bool {
        try await tx { db in
            let won = try await db.raw("""
                UPDATE device_grants SET status = 'redeemed' WHERE device_hash = \(bind: deviceHash) AND status = 'approved' RETURNING device_hash
                """).first() != nil
            guard won else { return false }
            try await Self.insertFamily(family, db)
            try await Self.insertToken(firstToken, db)
            return true
        }
    }
}
