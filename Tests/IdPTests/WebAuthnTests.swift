import Crypto
import Foundation
import XCTest
import _CryptoExtras

@testable import IdP

/// A minimal CBOR encoder (shortest-form heads), enough to build what authenticators send.
enum TestCBOR {
    static func head(_ major: UInt8, _ value: UInt64) -> [UInt8] {
        let m = major << 5
        switch value {
        case 0..<24: return [m | UInt8(value)]
        case 24...0xff: return [m | 24, UInt8(value)]
        case 0x100...0xffff: return [m | 25] + (0..<2).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        case 0x10000...0xffff_ffff: return [m | 26] + (0..<4).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        default: return [m | 27] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        }
    }
    static func int(_ v: Int) -> [UInt8] { v >= 0 ? head(0, UInt64(v)) : head(1, UInt64(-1 - v)) }
    static func bytes(_ b: [UInt8]) -> [UInt8] { head(2, UInt64(b.count)) + b }
    static func text(_ s: String) -> [UInt8] { head(3, UInt64(s.utf8.count)) + Array(s.utf8) }
    static func array(_ items: [[UInt8]]) -> [UInt8] { head(4, UInt64(items.count)) + items.flatMap { $0 } }
    static func map(_ entries: [([UInt8], [UInt8])]) -> [UInt8] {
        head(5, UInt64(entries.count)) + entries.flatMap { $0.0 + $0.1 }
    }
}

/// A software authenticator holding one credential key.
struct TestAuthenticator {
    enum Key {
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }
    let key: Key
    let credentialID: [UInt8]
    let aaguid: [UInt8] = Array(repeating: 0xAA, count: 16)

    static func p256() -> Self { Self(key: .p256(.init()), credentialID: (0..<16).map { _ in .random(in: 0...255) }) }
    static func ed25519() -> Self { Self(key: .ed25519(.init()), credentialID: (0..<32).map { _ in .random(in: 0...255) }) }
    static let rsaKey = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    static func rsa() -> Self { Self(key: .rsa(rsaKey), credentialID: (0..<20).map { _ in .random(in: 0...255) }) }

    var alg: Int {
        switch key {
        case .p256: -7
        case .ed25519: -8
        case .rsa: -257
        }
    }

    var cose: [UInt8] {
        typealias C = TestCBOR
        switch key {
        case .p256(let k):
            let raw = Array(k.publicKey.rawRepresentation)
            return C.map([(C.int(1), C.int(2)), (C.int(3), C.int(-7)), (C.int(-1), C.int(1)),
                          (C.int(-2), C.bytes(Array(raw[0..<32]))), (C.int(-3), C.bytes(Array(raw[32..<64])))])
        case .ed25519(let k):
            return C.map([(C.int(1), C.int(1)), (C.int(3), C.int(-8)), (C.int(-1), C.int(6)),
                          (C.int(-2), C.bytes(Array(k.publicKey.rawRepresentation)))])
        case .rsa(let k):
            let p = try! k.publicKey.getKeyPrimitives()
            return C.map([(C.int(1), C.int(3)), (C.int(3), C.int(-257)),
                          (C.int(-1), C.bytes(Array(p.modulus))), (C.int(-2), C.bytes(Array(p.publicExponent)))])
        }
    }

    func sign(_ data: [UInt8]) -> [UInt8] {
        switch key {
        case .p256(let k): Array(try! k.signature(for: data).derRepresentation)
        case .ed25519(let k): Array(try! k.signature(for: data))
        case .rsa(let k): Array(try! k.signature(for: data, padding: .insecurePKCS1v1_5).rawRepresentation)
        }
    }
}

/// Builds ceremonies the way a browser and authenticator would, with knobs to break each part.
struct TestCeremony {
    var rp = WebAuthnRelyingParty(id: "portal.example.org", origin: "https://portal.example.org")
    var challenge: [UInt8] = (0..<32).map { _ in .random(in: 0...255) }

    static let up: UInt8 = 0x01, uv: UInt8 = 0x04, be: UInt8 = 0x08, bs: UInt8 = 0x10, at: UInt8 = 0x40, ed: UInt8 = 0x80

    func clientData(type: String, challenge: [UInt8]? = nil, origin: String? = nil, crossOrigin: Bool = false) -> [UInt8] {
        let c = Base64URL.encode(challenge ?? self.challenge)
        return Array(#"{"type":"\#(type)","challenge":"\#(c)","origin":"\#(origin ?? rp.origin)","crossOrigin":\#(crossOrigin)}"#.utf8)
    }

    func authData(_ a: TestAuthenticator, rpID: String? = nil, flags: UInt8, counter: UInt32, attested: Bool,
                  credentialID: [UInt8]? = nil, extensions: [UInt8]? = nil) -> [UInt8] {
        var out = Array(SHA256.hash(data: Data((rpID ?? rp.id).utf8)))
        out.append(flags | (attested ? Self.at : 0) | (extensions != nil ? Self.ed : 0))
        out += (0..<4).reversed().map { UInt8(truncatingIfNeeded: counter >> ($0 * 8)) }
        if attested {
            let id = credentialID ?? a.credentialID
            out += a.aaguid + [UInt8(id.count >> 8), UInt8(id.count & 0xff)] + id + a.cose
        }
        if let extensions { out += extensions }
        return out
    }

    enum Statement { case none, packedSelf, packedSelfAlg(Int), packedX5C, custom(String, [UInt8]) }

    func attestationObject(_ a: TestAuthenticator, authData: [UInt8], clientData: [UInt8], statement: Statement) -> [UInt8] {
        typealias C = TestCBOR
        let signed = authData + Array(SHA256.hash(data: clientData))
        let (fmt, stmt): (String, [UInt8])
        switch statement {
        case .none: (fmt, stmt) = ("none", C.map([]))
        case .packedSelf: (fmt, stmt) = ("packed", C.map([(C.text("alg"), C.int(a.alg)), (C.text("sig"), C.bytes(a.sign(signed)))]))
        case .packedSelfAlg(let alg): (fmt, stmt) = ("packed", C.map([(C.text("alg"), C.int(alg)), (C.text("sig"), C.bytes(a.sign(signed)))]))
        case .packedX5C:
            (fmt, stmt) = ("packed", C.map([(C.text("alg"), C.int(a.alg)), (C.text("sig"), C.bytes(a.sign(signed))),
                                            (C.text("x5c"), C.array([C.bytes([0x30, 0x00])]))]))
        case .custom(let f, let s): (fmt, stmt) = (f, s)
        }
        return C.map([(C.text("fmt"), C.text(fmt)), (C.text("attStmt"), stmt), (C.text("authData"), C.bytes(authData))])
    }

    /// The posted JSON of a registration, as the page sends it.
    func registrationJSON(id: [UInt8], rawId: [UInt8]? = nil, clientData: [UInt8], attestationObject: [UInt8], type: String = "public-key") -> String {
        #"{"id":"\#(Base64URL.encode(id))","rawId":"\#(Base64URL.encode(rawId ?? id))","type":"\#(type)","#
            + #""response":{"clientDataJSON":"\#(Base64URL.encode(clientData))","attestationObject":"\#(Base64URL.encode(attestationObject))"}}"#
    }

    func assertionJSON(id: [UInt8], clientData: [UInt8], authData: [UInt8], signature: [UInt8], userHandle: [UInt8]?) -> String {
        let handle = userHandle.map { "\"\(Base64URL.encode($0))\"" } ?? "null"
        return #"{"id":"\#(Base64URL.encode(id))","rawId":"\#(Base64URL.encode(id))","type":"public-key","response":{"#
            + #""clientDataJSON":"\#(Base64URL.encode(clientData))","authenticatorData":"\#(Base64URL.encode(authData))","#
            + #""signature":"\#(Base64URL.encode(signature))","userHandle":\#(handle)}}"#
    }

    /// A registration, with everything valid unless a knob says otherwise.
    func register(_ a: TestAuthenticator, statement: Statement = .none, type: String = "webauthn.create", origin: String? = nil,
                  rpID: String? = nil, challenge: [UInt8]? = nil, flags: UInt8 = up | uv, attested: Bool = true,
                  credentialID: [UInt8]? = nil, rawId: [UInt8]? = nil, trailing: [UInt8] = [], crossOrigin: Bool = false,
                  requireUV: Bool = true) throws -> NewPasskey {
        let cd = clientData(type: type, challenge: challenge, origin: origin, crossOrigin: crossOrigin)
        let ad = authData(a, rpID: rpID, flags: flags, counter: 0, attested: attested, credentialID: credentialID) + trailing
        let ao = attestationObject(a, authData: ad, clientData: cd, statement: statement)
        let posted = try PostedCredential.parse(json: registrationJSON(id: rawId ?? a.credentialID, clientData: cd, attestationObject: ao))
        return try WebAuthn.register(posted, challenge: self.challenge, rp: rp, requireUserVerification: requireUV)
    }

    func authenticate(_ a: TestAuthenticator, publicKey: [UInt8], stored: UInt32 = 0, counter: UInt32 = 0, flags: UInt8 = up | uv,
                      type: String = "webauthn.get", origin: String? = nil, rpID: String? = nil, challenge: [UInt8]? = nil,
                      extensions: [UInt8]? = nil, corruptSignature: Bool = false, requireUV: Bool = true,
                      userHandle: [UInt8]? = [1, 2, 3]) throws -> PasskeyUse {
        let cd = clientData(type: type, challenge: challenge, origin: origin)
        let ad = authData(a, rpID: rpID, flags: flags, counter: counter, attested: false, extensions: extensions)
        var sig = a.sign(ad + Array(SHA256.hash(data: cd)))
        if corruptSignature { sig[sig.count / 2] ^= 0x01 }
        let posted = try PostedCredential.parse(json: assertionJSON(id: a.credentialID, clientData: cd, authData: ad, signature: sig,
                                                                    userHandle: userHandle))
        return try WebAuthn.authenticate(posted, challenge: self.challenge, rp: rp, publicKey: publicKey, storedSignCount: stored,
                                         requireUserVerification: requireUV)
    }
}

final class WebAuthnTests: XCTestCase {
    let ceremony = TestCeremony()

    func assertRefused<T>(_ expected: WebAuthnError, _ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? WebAuthnError, expected, "\(error)", file: file, line: line)
        }
    }

    func testRegistrationAndAssertionForEachAlgorithm() throws {
        for a in [TestAuthenticator.p256(), .ed25519(), .rsa()] {
            for statement in [TestCeremony.Statement.none, .packedSelf] {
                let passkey = try ceremony.register(a, statement: statement, flags: TestCeremony.up | TestCeremony.uv | TestCeremony.be)
                XCTAssertEqual(passkey.credentialID, a.credentialID)
                XCTAssertEqual(passkey.publicKey, a.cose)
                XCTAssertEqual(passkey.algorithm, a.alg)
                XCTAssertEqual(passkey.aaguid, a.aaguid)
                XCTAssertTrue(passkey.userVerified)
                XCTAssertTrue(passkey.backupEligible)
                XCTAssertEqual(passkey.format, { if case .none = statement { "none" } else { "packed" } }())

                let use = try ceremony.authenticate(a, publicKey: passkey.publicKey, stored: 0, counter: 0)
                XCTAssertEqual(use.signCount, 0)
                XCTAssertTrue(use.userVerified)
                XCTAssertEqual(use.userHandle, [1, 2, 3])
                XCTAssertEqual(try ceremony.authenticate(a, publicKey: passkey.publicKey, stored: 7, counter: 8).signCount, 8)
            }
        }
    }

    func testToleratedVariations() throws {
        let a = TestAuthenticator.p256()
        // UV not required: UP alone will do.
        XCTAssertFalse(try ceremony.register(a, flags: TestCeremony.up, requireUV: false).userVerified)
        // Extensions after the data are accepted (a one-entry map), and userHandle may be null.
        let ext = TestCBOR.map([(TestCBOR.text("credProtect"), TestCBOR.int(2))])
        let use = try ceremony.authenticate(a, publicKey: a.cose, extensions: ext, userHandle: nil)
        XCTAssertNil(use.userHandle)
        // Padded base64url is accepted.
        let cd = ceremony.clientData(type: "webauthn.create")
        let ao = ceremony.attestationObject(a, authData: ceremony.authData(a, flags: 5, counter: 0, attested: true), clientData: cd, statement: .none)
        let padded = #"{"id":"\#(Data(a.credentialID).base64EncodedString())","rawId":"\#(Base64URL.encode(a.credentialID))","type":"public-key","#
            + #""response":{"clientDataJSON":"\#(Base64URL.encode(cd))","attestationObject":"\#(Base64URL.encode(ao))"}}"#
        let posted = try PostedCredential.parse(json: padded.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_"))
        XCTAssertNoThrow(try WebAuthn.register(posted, challenge: ceremony.challenge, rp: ceremony.rp, requireUserVerification: true))
    }

    func testRegistrationRefusals() throws {
        let a = TestAuthenticator.p256(), c = ceremony, up = TestCeremony.up
        assertRefused(.originMismatch, try c.register(a, origin: "https://evil.example.org"))
        assertRefused(.originMismatch, try c.register(a, origin: "https://portal.example.org:443"))
        assertRefused(.rpIDMismatch, try c.register(a, rpID: "evil.example.org"))
        assertRefused(.wrongClientDataType(expected: "webauthn.create"), try c.register(a, type: "webauthn.get"))
        assertRefused(.challengeMismatch, try c.register(a, challenge: Array(c.challenge.reversed())))
        assertRefused(.crossOriginRefused, try c.register(a, crossOrigin: true))
        assertRefused(.userNotPresent, try c.register(a, flags: TestCeremony.uv))
        assertRefused(.userNotVerified, try c.register(a, flags: up))
        assertRefused(.inconsistentBackupFlags, try c.register(a, flags: up | TestCeremony.uv | TestCeremony.bs))
        assertRefused(.missingAttestedCredentialData, try c.register(a, attested: false))
        assertRefused(.rawIDMismatch, try c.register(a, rawId: [9, 9, 9]))
        assertRefused(.rawIDMismatch, try c.register(a, credentialID: [1, 2, 3, 4]))
        assertRefused(.malformedAuthenticatorData, try c.register(a, trailing: [0x00]))
        assertRefused(.unsupportedAttestation("packed with x5c"), try c.register(a, statement: .packedX5C))
        assertRefused(.unsupportedAttestation("fido-u2f"), try c.register(a, statement: .custom("fido-u2f", TestCBOR.map([]))))
        assertRefused(.unsupportedAttestation("tpm"), try c.register(a, statement: .custom("tpm", TestCBOR.map([]))))
        assertRefused(.malformedAttestationStatement,
                      try c.register(a, statement: .custom("none", TestCBOR.map([(TestCBOR.text("alg"), TestCBOR.int(-7))]))))
        assertRefused(.attestationAlgorithmMismatch, try c.register(a, statement: .packedSelfAlg(-257)))
        let forged = TestCBOR.map([(TestCBOR.text("alg"), TestCBOR.int(-7)), (TestCBOR.text("sig"), TestCBOR.bytes(a.sign([1, 2, 3])))])
        assertRefused(.badAttestationSignature, try c.register(a, statement: .custom("packed", forged)))
    }

    func testEnvelopeRefusals() throws {
        let a = TestAuthenticator.p256(), c = ceremony
        let cd = c.clientData(type: "webauthn.create")
        var ao = c.attestationObject(a, authData: c.authData(a, flags: 5, counter: 0, attested: true), clientData: cd, statement: .none)
        let notPublicKey = try PostedCredential.parse(json: c.registrationJSON(id: a.credentialID, clientData: cd, attestationObject: ao, type: "password"))
        assertRefused(.notPublicKeyCredential, try WebAuthn.register(notPublicKey, challenge: c.challenge, rp: c.rp, requireUserVerification: true))
        let idMismatch = try PostedCredential.parse(json: c.registrationJSON(id: [1], rawId: a.credentialID, clientData: cd, attestationObject: ao))
        assertRefused(.credentialIDMismatch, try WebAuthn.register(idMismatch, challenge: c.challenge, rp: c.rp, requireUserVerification: true))
        ao.append(0x00)  // trailing bytes after the attestation object
        let trailing = try PostedCredential.parse(json: c.registrationJSON(id: a.credentialID, clientData: cd, attestationObject: ao))
        assertRefused(.malformedAttestationObject, try WebAuthn.register(trailing, challenge: c.challenge, rp: c.rp, requireUserVerification: true))
        assertRefused(.malformedCredential, try PostedCredential.parse(json: #"{"id":"a*b","rawId":"","type":"public-key","response":{"clientDataJSON":""}}"#))
        assertRefused(.malformedCredential, try PostedCredential.parse(json: "[]"))
        assertRefused(.credentialTooLarge, try PostedCredential.parse(json: String(repeating: " ", count: 65 * 1024)))
        let noAttestation = try PostedCredential.parse(json: c.assertionJSON(id: a.credentialID, clientData: cd, authData: [], signature: [], userHandle: nil))
        assertRefused(.missingResponseField("attestationObject"),
                      try WebAuthn.register(noAttestation, challenge: c.challenge, rp: c.rp, requireUserVerification: true))
        var noChallenge = c
        noChallenge.challenge = []  // an empty expected challenge never matches, even an empty one
        assertRefused(.challengeMismatch, try noChallenge.register(a))
    }

    func testAssertionRefusals() throws {
        for a in [TestAuthenticator.p256(), .ed25519(), .rsa()] {
            let c = ceremony, key = a.cose
            assertRefused(.originMismatch, try c.authenticate(a, publicKey: key, origin: "https://portal.example.org.evil.net"))
            assertRefused(.rpIDMismatch, try c.authenticate(a, publicKey: key, rpID: "example.org"))
            assertRefused(.wrongClientDataType(expected: "webauthn.get"), try c.authenticate(a, publicKey: key, type: "webauthn.create"))
            assertRefused(.challengeMismatch, try c.authenticate(a, publicKey: key, challenge: [0]))
            assertRefused(.userNotPresent, try c.authenticate(a, publicKey: key, flags: TestCeremony.uv, requireUV: false))
            assertRefused(.userNotVerified, try c.authenticate(a, publicKey: key, flags: TestCeremony.up))
            assertRefused(.badSignature, try c.authenticate(a, publicKey: key, corruptSignature: true))
            assertRefused(.badSignature, try c.authenticate(a, publicKey: TestAuthenticator.p256().cose))
            assertRefused(.storedPublicKeyUnusable, try c.authenticate(a, publicKey: Array(key.dropLast())))
            assertRefused(.signCountDidNotIncrease(stored: 5, received: 5), try c.authenticate(a, publicKey: key, stored: 5, counter: 5))
            assertRefused(.signCountDidNotIncrease(stored: 5, received: 4), try c.authenticate(a, publicKey: key, stored: 5, counter: 4))
            assertRefused(.signCountDidNotIncrease(stored: 5, received: 0), try c.authenticate(a, publicKey: key, stored: 5, counter: 0))
            assertRefused(.malformedAuthenticatorData, try c.authenticate(a, publicKey: key, extensions: TestCBOR.int(1)))
        }
        XCTAssertEqual(WebAuthnError.signCountDidNotIncrease(stored: 1, received: 1).description,
                       "signature counter did not increase: possibly a cloned authenticator")
        XCTAssertEqual(WebAuthnError.originMismatch.description, "origin mismatch")
    }

    func refused(_ bytes: [UInt8]) -> COSEKeyError? {
        do { _ = try COSEKey(bytes: bytes) } catch { return error as? COSEKeyError }
        return nil
    }

    func testCOSEKeyRefusals() {
        typealias C = TestCBOR
        let p = TestAuthenticator.p256().cose
        XCTAssertNotNil(try? COSEKey(bytes: p))
        // ES256 with a point not on the curve.
        let offCurve = C.map([(C.int(1), C.int(2)), (C.int(3), C.int(-7)), (C.int(-1), C.int(1)),
                              (C.int(-2), C.bytes(Array(repeating: 1, count: 32))), (C.int(-3), C.bytes(Array(repeating: 2, count: 32)))])
        XCTAssertEqual(refused(offCurve), .invalidKey)
        XCTAssertEqual(refused(C.map([(C.int(1), C.int(2)), (C.int(3), C.int(-35))])), .unsupportedAlgorithm(-35))
        XCTAssertEqual(refused(C.map([(C.int(1), C.int(2)), (C.int(-1), C.int(1))])), .malformed)
        let rsa1024 = try! _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)).publicKey.getKeyPrimitives()
        XCTAssertEqual(refused(C.map([(C.int(1), C.int(3)), (C.int(3), C.int(-257)),
                                      (C.int(-1), C.bytes(Array(rsa1024.modulus))), (C.int(-2), C.bytes(Array(rsa1024.publicExponent)))])), .weakKey)
        XCTAssertEqual(refused(C.map([(C.int(1), C.int(1)), (C.int(3), C.int(-8)), (C.int(-1), C.int(7)),
                                      (C.int(-2), C.bytes(Array(repeating: 0, count: 32)))])), .unsupportedCurve)
        XCTAssertEqual(refused(p + [0]), .malformed)
        // A verify with a garbage (non-DER) ES256 signature is false, not a crash.
        XCTAssertFalse(try COSEKey(bytes: p).verify(signature: [0x30, 0xff, 1], over: [1]))
    }
}
