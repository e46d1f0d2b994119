import Foundation
import IdP
import SQLKit

// Login throttling (ThrottleStore): failure counters per key, and the addresses each account
// has signed in from ("familiar" addresses, counted apart from the others).
extension SQLStorage {
    /// Familiar addresses are forgotten after this long without a sign-in from them.
    static let familiarRetention: Int = 90 * 86400

    static func throttle(_ r: any SQLRow) throws -> ThrottleState {
        ThrottleState(key: try r.s("key"), failures: try r.i("failures"), windowStart: try r.d("window_start"), lockedUntil: try r.od("locked_until"))
    }

    public func throttleState(key: String) async throws -> ThrottleState? {
        try await read { db in try await db.raw("SELECT * FROM login_throttle WHERE key = \(bind: key)").first().map(Self.throttle) }
    }

    public func recordFailure(key: String, now: Date, window: TimeInterval, maxFailures: Int, lockout: TimeInterval) async throws -> ThrottleState {
        let lock = forUpdate
        return try await tx { db in
            // Make sure the row exists, so that SELECT … FOR UPDATE has something to lock: concurrent
            // first failures would otherwise all read "no row" and overwrite each other's count.
            try await db.raw("""
                INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES (\(bind: key), 0, \(bind: t(now)), NULL)
                ON CONFLICT (key) DO NOTHING
                """).run()
            var state = try await db.raw("SELECT * FROM login_throttle WHERE key = \(bind: key)\(unsafeRaw: lock)").first().map(Self.throttle)
                ?? ThrottleState(key: key, failures: 0, windowStart: now)
            if now.timeIntervalSince(state.windowStart) >= window && (state.lockedUntil.map { $0 <= now } ?? true) {
                state = ThrottleState(key: key, failures: 0, windowStart: now)
            }
            state.failures += 1
            if state.failures >= maxFailures {
                // Each failure past the limit doubles the lockout, up to 16×.
                let extra = min(state.failures - maxFailures, 4)
                state.lockedUntil = now + lockout * Double(1 << extra)
            }
            try await db.raw("""
                INSERT INTO login_throttle (key, failures, window_start, locked_until)
                VALUES (\(bind: key), \(bind: state.failures), \(bind: t(state.windowStart)), \(bind: t(state.lockedUntil)))
                ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
                  locked_until = excluded.locked_until
                """).run()
            return state
        }
    }

    public func clearThrottle(key: String) async throws {
        try await run { db in try await db.raw("DELETE FROM login_throttle WHERE key = \(bind: key)").run() }
    }


    public func throttles(now: Date) async throws -> [ThrottleState] {
        try await read { db in
            try await db.raw("SELECT * FROM login_throttle WHERE failures > 0 ORDER BY key LIMIT 100000").all().map(Self.throttle)
        }
    }

    public func rememberFamiliar(account: String, address: String, now: Date) async throws {
        try await run { db in
            try await db.raw("""
                INSERT INTO login_familiar (account, address, last_success) VALUES (\(bind: account), \(bind: address), \(bind: t(now)))
                ON CONFLICT (account, address) DO UPDATE SET last_success = excluded.last_success
                """).run()
        }
    }

    public func isFamiliar(account: String, address: String, since: Date) async throws -> Bool {
        try await read { db in
            try await db.raw("""
                SELECT last_success FROM login_familiar WHERE account = \(bind: account) AND address = \(bind: address)
                  AND last_success >= \(bind: t(since))
                """).first() != nil
        }
    }
}
