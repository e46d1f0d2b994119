import Foundation
import Logging

/// Why a passkey ceremony was refused (shown to the person in words, audited with the reason).
public struct PasskeyRefusal: Error, Sendable, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// Passkeys (WebAuthn Level 2): challenges, registration, and sign-in or second-factor use.
/// The ceremony checks themselves are `WebAuthn`'s; this keeps the state: single-use challenges bound
/// to one browser, stored credentials, and the signature counter moved by compare-and-set.
public struct Passkeys: Sendable {
    public static let challengeLifetime: TimeInterval = 300
    /// COSE algorithms offered, in order of preference: ES256, EdDSA, RS256.
    static let algorithms = [-7, -8, -257]

    let store: any Storage
    public let relyingParty: WebAuthnRelyingParty
    let rpName: String
    let auditor: Auditor
    let clock: any Clock
    let random: any RandomSource

    public init(store: any Storage, relyingParty: WebAuthnRelyingParty, rpName: String, clock: any Clock, random: any RandomSource, logger: Logger) {
        self.store = store; self.relyingParty = relyingParty; self.rpName = rpName
        self.auditor = Auditor(store: store, clock: clock, logger: logger); self.clock = clock; self.random = random
    }

    public enum Purpose: String, Sendable, CaseIterable { case login, factor, register, stepUp = "step-up" }

    /// `PublicKeyCredentialCreationOptions` / `…RequestOptions` as JSON (binary fields base64url), with a
    /// fresh challenge stored for this browser. `person`: who registers or confirms (nil for a passkey sign-in).
    public func options(_ purpose: Purpose, browserID: String, person: Identity?) async throws -> String {
        let challenge = random.bytes(32)
        try await store.createChallenge(WebAuthnChallenge(hash: Secrets.sha256Hex(Base64URL.encode(challenge)), browserHash: Secrets.sha256Hex(browserID),
                                                          userID: person?.subject ?? "", purpose: purpose.rawValue,
                                                          expiresAt: clock.now() + Self.challengeLifetime))
        var held: [[String: Any]] = []
        if let person {
            held = try await store.factors(userID: person.subject).filter { $0.kind == .passkey && $0.confirmed }
                .map { ["type": "public-key", "id": $0.credentialID] }
        }
        var o: [String: Any] = ["challenge": Base64URL.encode(challenge), "timeout": Int(Self.challengeLifetime * 1000)]
        switch purpose {
        case .register:
            guard let person else { throw PasskeyRefusal("nobody is signed in") }
            o["rp"] = ["id": relyingParty.id, "name": rpName]
            o["user"] = ["id": Base64URL.encode(Array(person.subject.utf8)), "name": person.username,
                         "displayName": person.displayName.isEmpty ? person.username : person.displayName]
            o["pubKeyCredParams"] = Self.algorithms.map { ["type": "public-key", "alg": $0] }
            o["attestation"] = "none"
            o["authenticatorSelection"] = ["residentKey": "preferred", "requireResidentKey": false, "userVerification": "preferred"]
            o["excludeCredentials"] = held
        case .login:
            o["rpId"] = relyingParty.id
            o["userVerification"] = "required"
            o["allowCredentials"] = [[String: Any]]()
        case .factor, .stepUp:
            o["rpId"] = relyingParty.id
            o["userVerification"] = "preferred"
            o["allowCredentials"] = held
        }
        let data = try JSONSerialization.data(withJSONObject: ["publicKey": o], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The challenge a posted credential answers, taken (single use) if it was made for this browser and purpose.
    func takeChallenge(_ json: String, browserID: String, purposes: Set<Purpose>) async throws -> (WebAuthnChallenge, [UInt8])? {
        guard json.utf8.count <= 65536,
              let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let response = object["response"] as? [String: Any],
              let clientDataText = response["clientDataJSON"] as? String,
              let clientData = Base64URL.decode(clientDataText.replacingOccurrences(of: "=", with: "")),
              let client = try? JSONSerialization.jsonObject(with: Data(clientData)) as? [String: Any],
              let challengeText = client["challenge"] as? String, challengeText.utf8.count <= 128,
              let challenge = Base64URL.decode(challengeText)
        else { return nil }
        guard let stored = try await store.takeChallenge(hash: Secrets.sha256Hex(Base64URL.encode(challenge)),
                                                         browserHash: Secrets.sha256Hex(browserID), now: clock.now()),
              let purpose = Purpose(rawValue: stored.purpose), purposes.contains(purpose)
        else { return nil }
        return (stored, challenge)
    }

    /// Registers a passkey for a signed-in person.
    public func register(_ person: Identity, credential json: String, name: String, browserID: String, remoteAddress: String) async throws -> Result<Factor, PasskeyRefusal> {
        func refuse(_ why: String) async -> Result<Factor, PasskeyRefusal> {
            await auditor.record("factor.failure", actor: person.username, subject: person.subject, remoteAddress: remoteAddress,
                                 success: false, details: ["kind": "passkey", "ceremony": "registration", "reason": why])
            return .failure(PasskeyRefusal(why))
        }
        guard let (challenge, bytes) = try await takeChallenge(json, browserID: browserID, purposes: [.register]),
              challenge.userID == person.subject else { return await refuse("unknown, expired or reused challenge") }
        let new: NewPasskey
        do {
            new = try WebAuthn.register(try PostedCredential.parse(json: json), challenge: bytes, rp: relyingParty, requireUserVerification: false)
        } catch { return await refuse("\(error)") }
        let credentialID = Base64URL.encode(new.credentialID)
        if try await store.factor(credentialID: credentialID) != nil { return await refuse("this passkey is already registered") }
        let factor = Factor(id: random.token(byteCount: 12), userID: person.subject, kind: .passkey,
                            name: SecondFactors.cleanName(name, fallback: "Passkey"), credentialID: credentialID,
                            publicKey: Base64URL.encode(new.publicKey), signCount: Int(new.signCount), backupEligible: new.backupEligible,
                            confirmed: true, createdAt: clock.now())
        try await store.createFactor(factor)
        await auditor.record("factor.enroll", actor: person.username, subject: person.subject, remoteAddress: remoteAddress,
                             details: ["kind": "passkey", "factor": factor.id, "attestation": new.format, "uv": new.userVerified ? "true" : "false"])
        return .success(factor)
    }

    /// A passkey used: to sign in alone (`person` nil: a discoverable credential, user verification required), or
    /// as the second factor / step-up of `person`. Returns the factor and the amr the passkey adds.
    public func authenticate(credential json: String, person: Identity?, browserID: String, remoteAddress: String,
                             actorHint: String = "") async throws -> Result<(Factor, [String]), PasskeyRefusal> {
        let actor = person?.username ?? actorHint
        func refuse(_ why: String, subject: String = "") async -> Result<(Factor, [String]), PasskeyRefusal> {
            await auditor.record("factor.failure", actor: actor, subject: person?.subject ?? subject, remoteAddress: remoteAddress,
                                 success: false, details: ["kind": "passkey", "reason": why])
            return .failure(PasskeyRefusal(why))
        }
        let purposes: Set<Purpose> = person == nil ? [.login] : [.factor, .stepUp]
        guard let (challenge, bytes) = try await takeChallenge(json, browserID: browserID, purposes: purposes) else {
            return await refuse("unknown, expired or reused challenge")
        }
        if let person, challenge.userID != person.subject { return await refuse("the challenge was made for someone else") }
        let posted: PostedCredential
        do { posted = try PostedCredential.parse(json: json) } catch { return await refuse("\(error)") }
        guard let factor = try await store.factor(credentialID: Base64URL.encode(posted.id)), factor.confirmed else {
            return await refuse("unknown passkey")
        }
        if let person, factor.userID != person.subject { return await refuse("the passkey belongs to someone else", subject: factor.userID) }
        guard let key = Base64URL.decode(factor.publicKey) else { return await refuse("stored key unreadable", subject: factor.userID) }
        let use: PasskeyUse
        do {
            use = try WebAuthn.authenticate(posted, challenge: bytes, rp: relyingParty, publicKey: Array(key),
                                            storedSignCount: UInt32(clamping: factor.signCount), requireUserVerification: person == nil)
        } catch { return await refuse("\(error)", subject: factor.userID) }
        // WebAuthn L3 §7.2 step 6: nobody was named before a passkey sign-in, so the user handle must name the owner;
        // as a second factor it may be absent, but never name someone else.
        if person == nil, use.userHandle?.isEmpty ?? true {
            return await refuse("the passkey did not name its user (not a discoverable credential)", subject: factor.userID)
        }
        if let handle = use.userHandle, !handle.isEmpty, handle != Array(factor.userID.utf8) {
            return await refuse("the passkey's user handle names someone else", subject: factor.userID)
        }
        guard try await store.usePasskey(id: factor.id, previous: factor.signCount, signCount: Int(use.signCount), now: clock.now()) else {
            return await refuse("the signature counter moved meanwhile (a parallel use or a cloned authenticator)", subject: factor.userID)
        }
        var amr = AMR.passkey(backupEligible: factor.backupEligible)
        if person == nil && use.userVerified { amr.append("mfa") }
        await auditor.record("factor.use", actor: actor, subject: factor.userID, remoteAddress: remoteAddress,
                             details: ["kind": "passkey", "factor": factor.name, "uv": use.userVerified ? "true" : "false"])
        return .success((factor, amr))
    }
}
