import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct LoginPolicy: Sendable {
    /// Failures of one account from one address before that pair waits (`lockout`, growing).
    public var maxFailuresPerUser: Int = 5
    /// Failures from one address on accounts that never signed in from there, before that
    /// address waits for such accounts (password spraying). Familiar accounts are not affected.
    public var maxFailuresPerAddress: Int = 20
    /// Failures of one account from all addresses it never signed in from, before those wait.
    /// Its familiar addresses are not affected.
    public var maxFailuresUnfamiliar: Int = 50
    /// Failures are forgotten this long after the last delay ended.
    public var failureWindow: TimeInterval = 15 * 60
    /// The first delay; each further failure doubles it, up to 16×.
    public var lockout: TimeInterval = 60
    /// An address stays familiar to an account this long after a sign-in from it.
    public var familiarFor: TimeInterval = 30 * 86400
    public init() {}
}

/// "Smart lockout": failures are counted per (account, address); failures from addresses an
/// account never signed in from are also counted per account and per address — but those
/// counters only ever delay *unfamiliar* attempts. An attacker elsewhere can slow themself down,
/// never the person at their usual address. Delays grow with each failure instead of one hard lock.
public struct LoginThrottle: Sendable {
    let store: any ThrottleStore
    let policy: LoginPolicy

    public init(store: any ThrottleStore, policy: LoginPolicy) { self.store = store; self.policy = policy }

    /// The unit an address is counted by: an IPv4 address, or the /64 of an IPv6 one.
    public static func addressUnit(_ address: String) -> String {
        guard address.contains(":") else { return address }
        var a = in6_addr()
        guard inet_pton(AF_INET6, address, &a) == 1 else { return address }
        let bytes = withUnsafeBytes(of: a) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return bytes[12..<16].map(String.init).joined(separator: ".")   // IPv4-mapped
        }
        return stride(from: 0, to: 8, by: 2).map { String(format: "%x", Int(bytes[$0]) << 8 | Int(bytes[$0 + 1])) }
            .joined(separator: ":") + "::/64"
    }

    public struct Keys: Sendable {
        public let pair: String, account: String, address: String
        public let familiar: Bool
        public let unit: String
        /// The counters this attempt is subject to. Clients have no account-wide counter: their
        /// addresses change with every pod, and an attacker must not be able to delay a new one.
        var applicable: [String] {
            if familiar { return [pair] }
            return account.hasPrefix("acct:" + LoginThrottle.clientPrefix) ? [pair, address] : [pair, account, address]
        }
    }

    /// Clients' counters live under this account prefix (no login name can start with it).
    public static let clientPrefix = "client:"

    public func keys(account: String, remoteAddress: String, now: Date) async throws -> Keys {
        let unit = Self.addressUnit(remoteAddress)
        let familiar = try await store.isFamiliar(account: account, address: unit, since: now - policy.familiarFor)
        return Keys(pair: "pair:\(account)|\(unit)", account: "acct:\(account)", address: "addr:\(unit)", familiar: familiar, unit: unit)
    }

    /// When the attempt must wait, the time it may be made again, and which counter said so.
    public func waiting(_ k: Keys, now: Date) async throws -> (until: Date, key: String)? {
        var worst: (Date, String)?
        for key in k.applicable {
            if let s = try await store.throttleState(key: key), let until = s.lockedUntil, until > now, until > (worst?.0 ?? .distantPast) {
                worst = (until, key)
            }
        }
        return worst.map { (until: $0.0, key: $0.1) }
    }

    /// Counts a failure on every applicable counter; returns when the next attempt may be made, if it must wait.
    public func failed(_ k: Keys, now: Date) async throws -> Date? {
        var until: Date?
        for key in k.applicable {
            let max = key == k.pair ? policy.maxFailuresPerUser : key == k.account ? policy.maxFailuresUnfamiliar : policy.maxFailuresPerAddress
            let s = try await store.recordFailure(key: key, now: now, window: policy.failureWindow, maxFailures: max, lockout: policy.lockout)
            if let l = s.lockedUntil, l > now, l > (until ?? .distantPast) { until = l }
        }
        return until
    }

    /// A sign-in succeeded: the pair's and the account's counters are cleared, the address becomes familiar.
    /// The address counter stays: one good password must not reset a spraying address.
    public func succeeded(_ k: Keys, account: String, now: Date) async throws {
        try await store.clearThrottle(key: k.pair)
        try await store.clearThrottle(key: k.account)
        try await store.rememberFamiliar(account: account, address: k.unit, now: now)
    }

    /// Active counters for the admin view and `portal throttle list`.
    public func list(now: Date) async throws -> [ThrottleState] {
        try await store.throttles(now: now).filter { s in
            (s.lockedUntil.map { $0 > now } ?? false) || now.timeIntervalSince(max(s.windowStart, s.lockedUntil ?? s.windowStart)) < policy.failureWindow
        }
    }

    /// Clears counters: one key, or every key of an account (`acct:` and its `pair:`s), or of an address.
    /// Returns the keys cleared.
    public func clear(key: String? = nil, account: String? = nil, address: String? = nil, now: Date) async throws -> [String] {
        let all = try await store.throttles(now: now).map(\.key)
        let unit = address.map(Self.addressUnit)
        let chosen = all.filter { k in
            if let key, k == key { return true }
            if let account, k == "acct:\(account)" || k.hasPrefix("pair:\(account)|") { return true }
            if let unit, k == "addr:\(unit)" || k == "krb:\(unit)" || k.hasSuffix("|\(unit)") { return true }
            return false
        }
        for k in chosen { try await store.clearThrottle(key: k) }
        return chosen
    }
}

/// Throttle keys in words, for people (admin view, CLI).
public enum ThrottleKey {
    /// (what is counted, account, address)
    public static func describe(_ key: String) -> (String, String, String) {
        if key.hasPrefix("pair:") {
            let rest = key.dropFirst(5)
            let bar = rest.lastIndex(of: "|") ?? rest.endIndex
            let account = String(rest[..<bar]), address = bar < rest.endIndex ? String(rest[rest.index(after: bar)...]) : ""
            return (account.hasPrefix("client:") ? "client at this address" : "account at this address", account, address)
        }
        if key.hasPrefix("acct:") {
            let account = String(key.dropFirst(5))
            return (account.hasPrefix("client:") ? "client, from unfamiliar addresses" : "account, from unfamiliar addresses", account, "(unfamiliar)")
        }
        if key.hasPrefix("addr:") { return ("address, on accounts never used there", "(any)", String(key.dropFirst(5))) }
        if key.hasPrefix("krb:") { return ("address, invalid Kerberos tickets", "(any)", String(key.dropFirst(4))) }
        return ("other", "", key)
    }
}
