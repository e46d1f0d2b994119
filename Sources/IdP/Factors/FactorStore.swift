import Foundation

/// A second factor a person holds: a passkey (WebAuthn credential) or an authenticator app (TOTP).
public struct Factor: Sendable, Equatable {
    public enum Kind: String, Sendable { case passkey, totp }
    public var id: String
    public var userID: String
    public var kind: Kind
    public var name: String
    /// Passkeys: the credential id (base64url) and its COSE public key (base64url); "" for TOTP.
    public var credentialID: String
    public var publicKey: String
    /// Passkeys: the last signature counter seen (a clone shows a lower one).
    public var signCount: Int
    /// Passkeys: backup eligible (a synced passkey: amr `swk`; otherwise `hwk`).
    public var backupEligible: Bool
    /// TOTP: the shared secret, sealed like signing keys (`KeySealer`); "" for passkeys.
    public var sealedSecret: String
    /// TOTP: the last time step a code was accepted for (each step's code counts once).
    public var lastStep: Int
    /// TOTP enrollments count only once a code was confirmed; passkeys are confirmed at registration.
    public var confirmed: Bool
    public var createdAt: Date
    public var lastUsedAt: Date?

    public init(id: String, userID: String, kind: Kind, name: String, credentialID: String = "", publicKey: String = "",
                signCount: Int = 0, backupEligible: Bool = false, sealedSecret: String = "", lastStep: Int = 0,
                confirmed: Bool, createdAt: Date, lastUsedAt: Date? = nil) {
        self.id = id; self.userID = userID; self.kind = kind; self.name = name; self.credentialID = credentialID
        self.publicKey = publicKey; self.signCount = signCount; self.backupEligible = backupEligible
        self.sealedSecret = sealedSecret; self.lastStep = lastStep; self.confirmed = confirmed
        self.createdAt = createdAt; self.lastUsedAt = lastUsedAt
    }
}

/// A WebAuthn challenge handed to one browser for one ceremony: single use, short-lived.
public struct WebAuthnChallenge: Sendable, Equatable {
    /// SHA-256 (hex) of the challenge bytes; the challenge itself is only sent to the browser.
    public var hash: String
    public var browserHash: String
    /// The person it was made for ("" for a passkey sign-in, where nobody is known yet).
    public var userID: String
    /// login | factor | register | step-up
    public var purpose: String
    public var expiresAt: Date

    public init(hash: String, browserHash: String, userID: String, purpose: String, expiresAt: Date) {
        self.hash = hash; self.browserHash = browserHash; self.userID = userID; self.purpose = purpose; self.expiresAt = expiresAt
    }
}

public protocol FactorStore: Sendable {
    func createFactor(_ factor: Factor) async throws
    /// Every factor of a person, confirmed or not, oldest first.
    func factors(userID: String) async throws -> [Factor]
    func factor(id: String) async throws -> Factor?
    func factor(credentialID: String) async throws -> Factor?
    /// Confirms a TOTP enrollment with the step its first code was for; false if already confirmed or gone.
    func confirmFactor(id: String, userID: String, name: String, step: Int, now: Date) async throws -> Bool
    /// Accepts a TOTP code's step once: true only if `step` is later than any accepted before (atomic).
    func useTOTP(id: String, step: Int, now: Date) async throws -> Bool
    /// Moves a passkey's counter from `previous` to `signCount` (atomic compare-and-set); false if it moved meanwhile.
    func usePasskey(id: String, previous: Int, signCount: Int, now: Date) async throws -> Bool
    func renameFactor(id: String, userID: String, name: String) async throws -> Bool
    func deleteFactor(id: String, userID: String) async throws -> Bool
    /// Removes every factor and recovery code of a person; returns how many factors went.
    func deleteFactors(userID: String) async throws -> Int
    /// Replaces a person's recovery codes (hashes) with a new set in one transaction.
    func replaceRecoveryCodes(userID: String, hashes: [String], now: Date) async throws
    /// Uses one recovery code (atomic): true the first time only.
    func useRecoveryCode(userID: String, hash: String, now: Date) async throws -> Bool
    func recoveryCodesLeft(userID: String) async throws -> Int
    func createChallenge(_ challenge: WebAuthnChallenge) async throws
    /// Takes (deletes and returns) a challenge made for this browser, if still alive.
    func takeChallenge(hash: String, browserHash: String, now: Date) async throws -> WebAuthnChallenge?
    /// When the enrollment grace period of a person started (recorded now, the first time).
    func mfaGraceStart(userID: String, now: Date) async throws -> Date
    /// Records that a browser session confirmed a factor now, with the session's new amr.
    func markSessionFactor(hash: String, amr: [String], at: Date) async throws
}
