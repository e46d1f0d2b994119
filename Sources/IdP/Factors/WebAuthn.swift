import Crypto
import Foundation

/// The relying party: `id` is the RP ID (a registrable domain, e.g. "portal.example.org"),
/// `origin` the exact origin pages are served from (e.g. "https://portal.example.org").
public struct WebAuthnRelyingParty: Sendable {
    public let id: String
    public let origin: String
    public init(id: String, origin: String) {
        (self.id, self.origin) = (id, origin)
    }
}

/// The `credential` form field posted by the page: JSON {"id": b64url, "rawId": b64url, "type": "public-key",
/// "response": {"clientDataJSON": b64url, "attestationObject": b64url} (registration) or
/// {"clientDataJSON", "authenticatorData", "signature", "userHandle": b64url|null} (assertion)}.
/// base64url without padding; padding is accepted too. Other members are ignored.
public struct PostedCredential: Sendable {
    public let id: [UInt8]
    public let rawId: [UInt8]
    public let type: String
    public let clientDataJSON: [UInt8]
    /// Registration only.
    public let attestationObject: [UInt8]?
    /// Assertion only.
    public let authenticatorData: [UInt8]?
    public let signature: [UInt8]?
    /// Assertion only; nil when null, absent or empty.
    public let userHandle: [UInt8]?

    public static let maxJSONBytes = 64 * 1024

    public init(id: [UInt8], rawId: [UInt8], type: String, clientDataJSON: [UInt8], attestationObject: [UInt8]? = nil,
                authenticatorData: [UInt8]? = nil, signature: [UInt8]? = nil, userHandle: [UInt8]? = nil) {
        (self.id, self.rawId, self.type, self.clientDataJSON) = (id, rawId, type, clientDataJSON)
        (self.attestationObject, self.authenticatorData, self.signature, self.userHandle) = (attestationObject, authenticatorData, signature, userHandle)
    }

    private struct Wire: Decodable {
        struct Response: Decodable {
            let clientDataJSON: String
            let attestationObject: String?
            let authenticatorData: String?
            let signature: String?
            let userHandle: String?
        }
        let id: String
        let rawId: String
        let type: String
        let response: Response
    }

    public static func parse(json: String) throws -> PostedCredential {
        guard json.utf8.count <= maxJSONBytes else { throw WebAuthnError.credentialTooLarge }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(json.utf8)) else { throw WebAuthnError.malformedCredential }
        func b64(_ s: String?) throws -> [UInt8]? {
            guard let s else { return nil }
            var t = Substring(s)
            for _ in 0..<2 where t.hasSuffix("=") { t = t.dropLast() }
            guard let bytes = Base64URL.decode(t) else { throw WebAuthnError.malformedCredential }
            return bytes
        }
        let r = wire.response
        let userHandle = try b64(r.userHandle)
        return PostedCredential(
            id: try b64(wire.id) ?? [], rawId: try b64(wire.rawId) ?? [], type: wire.type,
            clientDataJSON: try b64(r.clientDataJSON) ?? [], attestationObject: try b64(r.attestationObject),
            authenticatorData: try b64(r.authenticatorData), signature: try b64(r.signature),
            userHandle: userHandle?.isEmpty == true ? nil : userHandle)
    }
}

/// A credential that passed registration, to be stored.
public struct NewPasskey: Sendable {
    public let credentialID: [UInt8]
    /// The COSE_Key bytes exactly as the authenticator encoded them; pass back to `authenticate`.
    public let publicKey: [UInt8]
    public let algorithm: Int
    public let signCount: UInt32
    public let userVerified: Bool
    public let backupEligible: Bool
    public let backedUp: Bool
    public let aaguid: [UInt8]
    /// Attestation statement format: "none" or "packed" (self attestation).
    public let format: String
}

/// What a successful assertion tells: store `signCount` as the credential's new counter.
public struct PasskeyUse: Sendable {
    public let signCount: UInt32
    public let userVerified: Bool
    public let backupEligible: Bool
    public let backedUp: Bool
    /// As posted (not checked here): the caller must compare it with the credential's user.
    public let userHandle: [UInt8]?
}

public enum WebAuthnError: Error, Sendable, Equatable, CustomStringConvertible {
    // The posted credential.
    case credentialTooLarge, malformedCredential, notPublicKeyCredential, credentialIDMismatch
    case missingResponseField(String)
    // Client data.
    case malformedClientData, wrongClientDataType(expected: String), challengeMismatch, originMismatch
    case crossOriginRefused, tokenBindingNotSupported
    // Authenticator data and attestation.
    case malformedAttestationObject, malformedAuthenticatorData, rpIDMismatch, userNotPresent, userNotVerified
    case inconsistentBackupFlags, missingAttestedCredentialData, rawIDMismatch
    case unsupportedPublicKey(COSEKeyError), storedPublicKeyUnusable
    case unsupportedAttestation(String), malformedAttestationStatement, attestationAlgorithmMismatch, badAttestationSignature
    // Assertion.
    case badSignature, signCountDidNotIncrease(stored: UInt32, received: UInt32)

    public var description: String {
        switch self {
        case .credentialTooLarge: "credential too large"
        case .malformedCredential: "malformed credential"
        case .notPublicKeyCredential: "credential type is not public-key"
        case .credentialIDMismatch: "credential id does not match rawId"
        case .missingResponseField(let f): "response has no \(f)"
        case .malformedClientData: "malformed client data"
        case .wrongClientDataType(let t): "client data type is not \(t)"
        case .challengeMismatch: "challenge mismatch"
        case .originMismatch: "origin mismatch"
        case .crossOriginRefused: "cross-origin ceremony refused"
        case .tokenBindingNotSupported: "token binding is not supported"
        case .malformedAttestationObject: "malformed attestation object"
        case .malformedAuthenticatorData: "malformed authenticator data"
        case .rpIDMismatch: "relying party id mismatch"
        case .userNotPresent: "user presence not asserted"
        case .userNotVerified: "user verification required but not performed"
        case .inconsistentBackupFlags: "backup state set without backup eligibility"
        case .missingAttestedCredentialData: "no attested credential data"
        case .rawIDMismatch: "rawId does not match the attested credential id"
        case .unsupportedPublicKey(let e): "unsupported credential public key: \(e)"
        case .storedPublicKeyUnusable: "stored public key is unusable"
        case .unsupportedAttestation(let f): "unsupported attestation (\(f))"
        case .malformedAttestationStatement: "malformed attestation statement"
        case .attestationAlgorithmMismatch: "attestation algorithm does not match the credential key"
        case .badAttestationSignature: "attestation signature invalid"
        case .badSignature: "signature invalid"
        case .signCountDidNotIncrease: "signature counter did not increase: possibly a cloned authenticator"
        }
    }
}

/// Server-side checks of the registration (§7.1) and authentication (§7.2) ceremonies of
/// W3C WebAuthn Level 2. Pure: the caller supplies the challenge it issued, and for an assertion
/// the stored key and counter of the credential named by `rawId`, and stores what is returned.
public enum WebAuthn {
    public static func register(_ c: PostedCredential, challenge: [UInt8], rp: WebAuthnRelyingParty,
                                requireUserVerification: Bool) throws -> NewPasskey {
        try checkEnvelope(c)
        guard let attestationObject = c.attestationObject else { throw WebAuthnError.missingResponseField("attestationObject") }
        try checkClientData(c.clientDataJSON, type: "webauthn.create", challenge: challenge, rp: rp)

        let object: CBOR
        do { object = try CBOR.decode(attestationObject) } catch { throw WebAuthnError.malformedAttestationObject }
        guard let fmt = object["fmt"]?.text, let attStmt = object["attStmt"], let statement = attStmt.map,
              let authDataBytes = object["authData"]?.bytes
        else { throw WebAuthnError.malformedAttestationObject }

        let authData = try AuthenticatorData(authDataBytes)
        try checkFlags(authData, rp: rp, requireUserVerification: requireUserVerification)
        guard let attested = authData.attested else { throw WebAuthnError.missingAttestedCredentialData }
        guard attested.credentialID == c.rawId else { throw WebAuthnError.rawIDMismatch }

        switch fmt {
        case "none":
            guard statement.isEmpty else { throw WebAuthnError.malformedAttestationStatement }
        case "packed":
            if attStmt["x5c"] != nil { throw WebAuthnError.unsupportedAttestation("packed with x5c") }
            if attStmt["ecdaaKeyId"] != nil { throw WebAuthnError.unsupportedAttestation("packed with ECDAA") }
            guard statement.count == 2, let alg = attStmt["alg"]?.int, let sig = attStmt["sig"]?.bytes else {
                throw WebAuthnError.malformedAttestationStatement
            }
            guard alg == attested.key.algorithm else { throw WebAuthnError.attestationAlgorithmMismatch }
            let signed = authDataBytes + Array(SHA256.hash(data: c.clientDataJSON))
            guard attested.key.verify(signature: sig, over: signed) else { throw WebAuthnError.badAttestationSignature }
        default:
            // Echo the format only when it is a short printable name (it ends up in logs).
            let printable = fmt.utf8.count <= 32 && fmt.unicodeScalars.allSatisfy { (0x21...0x7e).contains($0.value) }
            throw WebAuthnError.unsupportedAttestation(printable ? fmt : "unrecognized format")
        }

        return NewPasskey(
            credentialID: attested.credentialID, publicKey: attested.publicKey, algorithm: attested.key.algorithm,
            signCount: authData.signCount, userVerified: authData.userVerified, backupEligible: authData.backupEligible,
            backedUp: authData.backedUp, aaguid: attested.aaguid, format: fmt)
    }

    public static func authenticate(_ c: PostedCredential, challenge: [UInt8], rp: WebAuthnRelyingParty, publicKey: [UInt8],
                                    storedSignCount: UInt32, requireUserVerification: Bool) throws -> PasskeyUse {
        try checkEnvelope(c)
        guard let authDataBytes = c.authenticatorData else { throw WebAuthnError.missingResponseField("authenticatorData") }
        guard let signature = c.signature else { throw WebAuthnError.missingResponseField("signature") }
        try checkClientData(c.clientDataJSON, type: "webauthn.get", challenge: challenge, rp: rp)

        let authData = try AuthenticatorData(authDataBytes)
        try checkFlags(authData, rp: rp, requireUserVerification: requireUserVerification)

        guard let key = try? COSEKey(bytes: publicKey) else { throw WebAuthnError.storedPublicKeyUnusable }
        let signed = authDataBytes + Array(SHA256.hash(data: c.clientDataJSON))
        guard key.verify(signature: signature, over: signed) else { throw WebAuthnError.badSignature }

        if storedSignCount != 0 || authData.signCount != 0, authData.signCount <= storedSignCount {
            throw WebAuthnError.signCountDidNotIncrease(stored: storedSignCount, received: authData.signCount)
        }
        return PasskeyUse(signCount: authData.signCount, userVerified: authData.userVerified,
                          backupEligible: authData.backupEligible, backedUp: authData.backedUp, userHandle: c.userHandle)
    }

    private static func checkEnvelope(_ c: PostedCredential) throws {
        guard c.type == "public-key" else { throw WebAuthnError.notPublicKeyCredential }
        guard !c.rawId.isEmpty, c.id == c.rawId else { throw WebAuthnError.credentialIDMismatch }
    }

    private struct ClientData: Decodable {
        struct TokenBinding: Decodable { let status: String }
        let type: String
        let challenge: String
        let origin: String
        let crossOrigin: Bool?
        let tokenBinding: TokenBinding?
    }

    private static func checkClientData(_ json: [UInt8], type: String, challenge: [UInt8], rp: WebAuthnRelyingParty) throws {
        guard let clientData = try? JSONDecoder().decode(ClientData.self, from: Data(json)) else {
            throw WebAuthnError.malformedClientData
        }
        guard clientData.type == type else { throw WebAuthnError.wrongClientDataType(expected: type) }
        guard !challenge.isEmpty, let posted = Base64URL.decode(clientData.challenge),
              Secrets.constantTimeEqual(posted, challenge)
        else { throw WebAuthnError.challengeMismatch }
        guard clientData.origin == rp.origin else { throw WebAuthnError.originMismatch }
        guard clientData.crossOrigin != true else { throw WebAuthnError.crossOriginRefused }
        // Token binding is not used: a client claiming it is "present" on this connection is wrong.
        guard clientData.tokenBinding?.status != "present" else { throw WebAuthnError.tokenBindingNotSupported }
    }

    private static func checkFlags(_ a: AuthenticatorData, rp: WebAuthnRelyingParty, requireUserVerification: Bool) throws {
        guard Secrets.constantTimeEqual(a.rpIDHash, Array(SHA256.hash(data: Data(rp.id.utf8)))) else { throw WebAuthnError.rpIDMismatch }
        guard a.userPresent else { throw WebAuthnError.userNotPresent }
        guard a.userVerified || !requireUserVerification else { throw WebAuthnError.userNotVerified }
        guard a.backupEligible || !a.backedUp else { throw WebAuthnError.inconsistentBackupFlags }
    }
}

/// Authenticator data (§6.1): rpIdHash(32) flags(1) signCount(4, big-endian)
/// [attested credential data: aaguid(16) credentialIdLength(2) credentialId credentialPublicKey]
/// [extensions: a CBOR map]. Nothing may follow.
struct AuthenticatorData {
    struct Attested {
        let aaguid: [UInt8]
        let credentialID: [UInt8]
        let publicKey: [UInt8]
        let key: COSEKey
    }

    let rpIDHash: ArraySlice<UInt8>
    let flags: UInt8
    let signCount: UInt32
    let attested: Attested?

    var userPresent: Bool { flags & 0x01 != 0 }
    var userVerified: Bool { flags & 0x04 != 0 }
    var backupEligible: Bool { flags & 0x08 != 0 }
    var backedUp: Bool { flags & 0x10 != 0 }

    static let maxCredentialIDLength = 1023

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 37 else { throw WebAuthnError.malformedAuthenticatorData }
        rpIDHash = bytes[0..<32]
        flags = bytes[32]
        signCount = bytes[33..<37].reduce(0) { $0 << 8 | UInt32($1) }
        var position = 37

        if flags & 0x40 != 0 {
            guard bytes.count - position >= 18 else { throw WebAuthnError.malformedAuthenticatorData }
            let aaguid = Array(bytes[position..<(position + 16)])
            let length = Int(bytes[position + 16]) << 8 | Int(bytes[position + 17])
            position += 18
            guard length >= 1, length <= Self.maxCredentialIDLength, bytes.count - position >= length else {
                throw WebAuthnError.malformedAuthenticatorData
            }
            let credentialID = Array(bytes[position..<(position + length)])
            position += length
            let keyItem: CBOR, consumed: Int
            do { (keyItem, consumed) = try CBOR.decodePrefix(bytes[position...]) } catch {
                throw WebAuthnError.malformedAuthenticatorData
            }
            let key: COSEKey
            do { key = try COSEKey(cbor: keyItem) } catch let e as COSEKeyError {
                throw WebAuthnError.unsupportedPublicKey(e)
            }
            attested = Attested(aaguid: aaguid, credentialID: credentialID,
                                publicKey: Array(bytes[position..<(position + consumed)]), key: key)
            position += consumed
        } else {
            attested = nil
        }

        if flags & 0x80 != 0 {
            // Extensions are tolerated, not interpreted; they must still be one well-formed map.
            guard let decoded = try? CBOR.decodePrefix(bytes[position...]), decoded.0.map != nil else {
                throw WebAuthnError.malformedAuthenticatorData
            }
            position += decoded.consumed
        }
        guard position == bytes.count else { throw WebAuthnError.malformedAuthenticatorData }
    }
}
