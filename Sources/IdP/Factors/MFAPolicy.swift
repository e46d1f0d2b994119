import Foundation

/// Who must hold a second factor, and how logins are weighed (config `mfa:`).
public struct MFAPolicy: Sendable, Equatable {
    public enum Requirement: String, Sendable, CaseIterable { case none, everyone, groups, admins }
    public var require: Requirement
    /// With `.groups`: directory or local group names.
    public var groups: Set<String>
    /// How long a person who must have a factor, and has none, may still use the portal without one.
    public var gracePeriod: TimeInterval
    /// Whether a Kerberos (SPNEGO) login satisfies the policy by itself (otherwise it is one factor).
    public var kerberosSatisfies: Bool
    /// Admins holding a factor confirm one again for admin pages after this long.
    public var stepUp: TimeInterval
    /// `acr` claim values ("" = no `acr` claim).
    public var acrMultiFactor: String
    public var acrSingleFactor: String

    public init(require: Requirement = .none, groups: Set<String> = [], gracePeriod: TimeInterval = 7 * 86400,
                kerberosSatisfies: Bool = false, stepUp: TimeInterval = 15 * 60, acrMultiFactor: String = "", acrSingleFactor: String = "") {
        self.require = require; self.groups = groups; self.gracePeriod = gracePeriod; self.kerberosSatisfies = kerberosSatisfies
        self.stepUp = stepUp; self.acrMultiFactor = acrMultiFactor; self.acrSingleFactor = acrSingleFactor
    }

    /// Whether the policy requires this person to sign in with a second factor.
    public func applies(to identity: Identity, isAdmin: Bool) -> Bool {
        switch require {
        case .none: return false
        case .everyone: return true
        case .admins: return isAdmin
        case .groups: return identity.groups.contains { groups.contains($0) }
        }
    }

    /// Whether a login with `amr` may get tokens for this person: fine, fine until the end of their grace
    /// period (counted from the first time this is asked for them), or not until they sign in with a factor.
    public func verdict(_ identity: Identity, isAdmin: Bool, amr: [String], store: any FactorStore, now: Date) async throws -> MFAVerdict {
        guard applies(to: identity, isAdmin: isAdmin), !AMR.isMultiFactor(amr) else { return .ok }
        if gracePeriod <= 0 { return .blocked }
        // Holding a factor and not having used it (a sign-in from before enrolling): no grace.
        if try await store.factors(userID: identity.subject).contains(where: \.confirmed) { return .blocked }
        let until = try await store.mfaGraceStart(userID: identity.subject, now: now) + gracePeriod
        return until > now ? .grace(until: until) : .blocked
    }

    /// The `acr` claim for a login with these `amr` values, if configured.
    public func acr(for amr: [String]) -> String? {
        let value = AMR.isMultiFactor(amr) ? acrMultiFactor : acrSingleFactor
        return value.isEmpty ? nil : value
    }
}

public enum MFAVerdict: Sendable, Equatable { case ok, grace(until: Date), blocked }

/// RFC 8176 authentication method references, as the portal composes them.
public enum AMR {
    /// The primary login's methods: "password" and "ldap" → pwd; "kerberos" → kerberos (+ mfa when it satisfies the policy).
    public static func primary(method: String, kerberosSatisfies: Bool) -> [String] {
        switch method {
        case "kerberos": return kerberosSatisfies ? ["kerberos", "mfa"] : ["kerberos"]
        case "passkey": return []
        default: return ["pwd"]
        }
    }

    /// A passkey's methods: hwk (device-bound) or swk (synced, backup eligible), and user (presence).
    public static func passkey(backupEligible: Bool) -> [String] { [backupEligible ? "swk" : "hwk", "user"] }

    /// `amr` after adding a confirmed second factor (`otp`, or a passkey's methods) to a login's amr.
    public static func adding(_ factor: [String], to amr: [String]) -> [String] {
        var out = amr.filter { $0 != "mfa" }
        for m in factor where !out.contains(m) { out.append(m) }
        let knowledge = out.contains("pwd") || out.contains("kerberos")
        let possession = out.contains("otp") || out.contains("hwk") || out.contains("swk")
        if (knowledge && possession) || amr.contains("mfa") { out.append("mfa") }
        return out
    }

    public static func isMultiFactor(_ amr: [String]) -> Bool { amr.contains("mfa") }

    /// Stored form: space-separated.
    public static func encode(_ amr: [String]) -> String { amr.joined(separator: " ") }
    public static func decode(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }
}
