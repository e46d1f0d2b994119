import Foundation
import Logging

/// RFC 6238 codes, computed by an implementation the portal is given (HummingbirdOTP in the server).
/// `secret`: the shared key's text (its UTF-8 bytes are the HMAC key); `step`: Unix time / 30.
public protocol OneTimeCodes: Sendable {
    func code(secret: String, step: Int) -> Int
    /// The `otpauth://totp/…` URI an authenticator app scans.
    func provisioningURI(secret: String, label: String, issuer: String) -> String
}

/// A TOTP enrollment waiting for its first code.
public struct TOTPEnrollment: Sendable {
    public let id: String
    /// The key as authenticator apps take it (base32), in groups of four for reading.
    public let secretText: String
    public let uri: String
}

/// What a typed code (authenticator app or recovery code) did.
public enum CodeCheck: Sendable, Equatable {
    /// `amr`: the methods the code adds (`otp`); `factor`: the authenticator app's name, or "recovery code".
    case accepted(amr: [String], factor: String)
    case wrong
    case lockedOut(until: Date)
}

/// Authenticator apps (TOTP) and recovery codes, and a person's factors as a whole.
public struct SecondFactors: Sendable {
    public static let stepSeconds = 30
    public static let recoveryCodeCount = 10
    static let secretAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    let store: any Storage
    let sealer: KeySealer
    let codes: any OneTimeCodes
    let throttle: LoginThrottle
    let auditor: Auditor
    let clock: any Clock
    let random: any RandomSource
    /// The issuer's host: the authenticator app's label and issuer.
    let issuerName: String

    public init(store: any Storage, sealer: KeySealer, codes: any OneTimeCodes, loginPolicy: LoginPolicy, clock: any Clock,
                random: any RandomSource, issuerName: String, logger: Logger) {
        self.store = store; self.sealer = sealer; self.codes = codes
        self.throttle = LoginThrottle(store: store, policy: loginPolicy)
        self.auditor = Auditor(store: store, clock: clock, logger: logger)
        self.clock = clock; self.random = random; self.issuerName = issuerName
    }

    /// A person's factors that count (confirmed), oldest first.
    public func factors(userID: String) async throws -> [Factor] {
        try await store.factors(userID: userID).filter(\.confirmed)
    }

    public func holdsFactor(userID: String) async throws -> Bool { try await !factors(userID: userID).isEmpty }

    // MARK: Authenticator apps

    /// Starts an enrollment: a new secret, stored sealed and unconfirmed until a code proves the app has it.
    public func startTOTP(_ identity: Identity) async throws -> TOTPEnrollment {
        let secret = String((0..<20).map { _ in Self.secretAlphabet[Int(random.bytes(1)[0] & 31)] })
        let factor = Factor(id: random.token(byteCount: 12), userID: identity.subject, kind: .totp, name: "Authenticator app",
                            sealedSecret: try sealer.seal(Data(secret.utf8)), confirmed: false, createdAt: clock.now())
        try await store.createFactor(factor)
        return enrollment(factor, secret: secret, username: identity.username)
    }

    /// An unconfirmed enrollment of this person (shown again after a wrong code).
    public func enrollment(id: String, identity: Identity) async throws -> TOTPEnrollment? {
        guard id.utf8.count <= 64, let f = try await store.factor(id: id), f.userID == identity.subject, f.kind == .totp, !f.confirmed,
              f.createdAt + 3600 > clock.now() else { return nil }
        return enrollment(f, secret: try secret(f), username: identity.username)
    }

    func enrollment(_ f: Factor, secret: String, username: String) -> TOTPEnrollment {
        let b32 = Base32.encode(Array(secret.utf8))
        let grouped = stride(from: 0, to: b32.count, by: 4).map { i -> String in
            let start = b32.index(b32.startIndex, offsetBy: i)
            return String(b32[start..<(b32.index(start, offsetBy: 4, limitedBy: b32.endIndex) ?? b32.endIndex)])
        }.joined(separator: " ")
        return TOTPEnrollment(id: f.id, secretText: grouped,
                              uri: codes.provisioningURI(secret: secret, label: "\(issuerName):\(username)", issuer: issuerName))
    }

    func secret(_ f: Factor) throws -> String { String(decoding: try sealer.open(f.sealedSecret), as: UTF8.self) }

    /// Confirms an enrollment with a code from the app. Wrong codes count in the login throttle.
    public func confirmTOTP(_ identity: Identity, enrollment id: String, code: String, name: String, remoteAddress: String) async throws -> CodeCheck {
        let now = clock.now()
        let keys = try await throttle.keys(account: identity.username, remoteAddress: remoteAddress, now: now)
        if let wait = try await throttle.waiting(keys, now: now) { return .lockedOut(until: wait.until) }
        guard id.utf8.count <= 64, let f = try await store.factor(id: id), f.userID == identity.subject, f.kind == .totp, !f.confirmed,
              let step = matchingStep(try secret(f), code: code, after: 0, now: now),
              try await store.confirmFactor(id: f.id, userID: identity.subject, name: Self.cleanName(name, fallback: "Authenticator app"),
                                            step: step, now: now)
        else {
            await auditor.record("factor.failure", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                                 success: false, details: ["kind": "totp", "reason": "wrong enrollment code"])
            if let until = try await throttle.failed(keys, now: now) { return .lockedOut(until: until) }
            return .wrong
        }
        await auditor.record("factor.enroll", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                             details: ["kind": "totp", "factor": f.id])
        return .accepted(amr: ["otp"], factor: name)
    }

    /// The time step (now −1, now, now +1) whose code `code` is, if any and later than `after`.
    func matchingStep(_ secret: String, code: String, after: Int, now: Date) -> Int? {
        let digits = code.filter { !$0.isWhitespace }
        guard digits.count == 6, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        let current = Int(now.timeIntervalSince1970) / Self.stepSeconds
        var found: Int?
        for step in (current - 1)...(current + 1) where step > after {
            let expected = String(format: "%06d", codes.code(secret: secret, step: step))
            if Secrets.constantTimeEqual(expected, digits), found == nil { found = step }
        }
        return found
    }

    // MARK: Signing in with a code

    /// Checks a code typed as the second step (an authenticator app's, or a recovery code) for a person.
    /// A code counts once; wrong codes count in the login throttle of the account.
    public func verify(_ identity: Identity, code rawCode: String, remoteAddress: String) async throws -> CodeCheck {
        let now = clock.now()
        let keys = try await throttle.keys(account: identity.username, remoteAddress: remoteAddress, now: now)
        if let wait = try await throttle.waiting(keys, now: now) {
            await auditor.record("factor.failure", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                                 success: false, details: ["reason": "throttled"])
            return .lockedOut(until: wait.until)
        }
        let code = String(rawCode.prefix(64))
        var outcome: CodeCheck = .wrong
        var kind = "totp"
        if code.filter({ !$0.isWhitespace }).count == 6 {
            for f in try await factors(userID: identity.subject) where f.kind == .totp {
                if let step = matchingStep(try secret(f), code: code, after: f.lastStep, now: now),
                   try await store.useTOTP(id: f.id, step: step, now: now) {
                    outcome = .accepted(amr: ["otp"], factor: f.name)
                    break
                }
            }
        } else if let normalized = Self.normalizedRecoveryCode(code) {
            kind = "recovery"
            if try await store.useRecoveryCode(userID: identity.subject, hash: Self.recoveryHash(normalized, userID: identity.subject), now: now) {
                outcome = .accepted(amr: ["otp"], factor: "recovery code")
            }
        }
        if case .accepted(_, let factor) = outcome {
            try await throttle.succeeded(keys, account: identity.username, now: now)
            await auditor.record("factor.use", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                                 details: ["kind": kind, "factor": factor])
            return outcome
        }
        await auditor.record("factor.failure", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                             success: false, details: ["kind": kind, "reason": "wrong code"])
        if let until = try await throttle.failed(keys, now: now) { return .lockedOut(until: until) }
        return .wrong
    }

    // MARK: Recovery codes

    /// Ten new single-use codes (xxxx-xxxx-xxxx-xxxx, 80 bits each), shown once; only their hashes are kept,
    /// and the previous set stops working.
    public func newRecoveryCodes(_ identity: Identity, remoteAddress: String) async throws -> [String] {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        let plain = (0..<Self.recoveryCodeCount).map { _ in String(random.bytes(16).map { alphabet[Int($0 & 31)] }) }
        try await store.replaceRecoveryCodes(userID: identity.subject, hashes: plain.map { Self.recoveryHash($0, userID: identity.subject) },
                                             now: clock.now())
        await auditor.record("factor.recovery_generate", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress)
        return plain.map { c in stride(from: 0, to: 16, by: 4).map { i in String(Array(c)[i..<i + 4]) }.joined(separator: "-") }
    }

    public func recoveryCodesLeft(userID: String) async throws -> Int { try await store.recoveryCodesLeft(userID: userID) }

    static func normalizedRecoveryCode(_ code: String) -> String? {
        let c = code.lowercased().filter { $0 != "-" && !$0.isWhitespace }
        guard c.count == 16, c.allSatisfy({ ("a"..."z").contains($0) || ("2"..."7").contains($0) }) else { return nil }
        return c
    }

    static func recoveryHash(_ normalized: String, userID: String) -> String {
        Secrets.sha256Hex("recovery\u{0}" + userID + "\u{0}" + normalized)
    }

    // MARK: Managing

    public func rename(_ identity: Identity, id: String, name: String, remoteAddress: String) async throws -> Bool {
        guard id.utf8.count <= 64 else { return false }
        let clean = Self.cleanName(name, fallback: "")
        guard !clean.isEmpty, try await store.renameFactor(id: id, userID: identity.subject, name: clean) else { return false }
        await auditor.record("factor.rename", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                             details: ["factor": id, "name": clean])
        return true
    }

    public func remove(_ identity: Identity, id: String, remoteAddress: String) async throws -> Bool {
        guard id.utf8.count <= 64, try await store.deleteFactor(id: id, userID: identity.subject) else { return false }
        await auditor.record("factor.remove", actor: identity.username, subject: identity.subject, remoteAddress: remoteAddress,
                             details: ["factor": id])
        return true
    }

    /// An administrator (or the CLI) removes every factor and recovery code of a person. Ending their
    /// sessions is the caller's part (through `Signout`).
    public func reset(userID: String, username: String, by actor: String, remoteAddress: String) async throws -> Int {
        let removed = try await store.deleteFactors(userID: userID)
        await auditor.record("factor.reset", actor: actor, subject: userID, remoteAddress: remoteAddress,
                             details: ["user": username, "factors": String(removed)])
        return removed
    }

    /// A factor's name as typed: printable, trimmed, at most 64 characters.
    public static func cleanName(_ name: String, fallback: String) -> String {
        let n = String(Identifiers.printable(name).trimmingCharacters(in: .whitespacesAndNewlines).prefix(64))
        return n.isEmpty ? fallback : n
    }
}

/// RFC 4648 base32 (no padding), for authenticator apps.
enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    static func encode(_ bytes: [UInt8]) -> String {
        var out = "", buffer = 0, bits = 0
        for b in bytes {
            buffer = (buffer << 8) | Int(b); bits += 8
            while bits >= 5 { out.append(alphabet[(buffer >> (bits - 5)) & 31]); bits -= 5 }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return out
    }
}
