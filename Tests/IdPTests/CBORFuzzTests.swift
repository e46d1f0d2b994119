import Crypto
import Foundation
import XCTest

@testable import IdP

/// SplitMix64: a fixed seed gives the same inputs on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class CBORFuzzTests: XCTestCase {
    func decodeError(_ bytes: [UInt8]) -> CBORError? {
        do { _ = try CBOR.decode(bytes); return nil } catch { return error as? CBORError }
    }

    func testAcceptsWhatWebAuthnNeeds() throws {
        XCTAssertEqual(try CBOR.decode([0x00]), .unsigned(0))
        XCTAssertEqual(try CBOR.decode([0x20]).int, -1)
        XCTAssertEqual(try CBOR.decode([0x39, 0x01, 0x00]).int, -257)
        XCTAssertEqual(try CBOR.decode([0x18, 0x05]).int, 5)  // non-shortest: accepted
        XCTAssertEqual(try CBOR.decode([0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).int, Int(Int64.min))
        XCTAssertNil(try CBOR.decode([0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0]).int)  // below Int64.min
        XCTAssertNil(try CBOR.decode([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).int)  // above Int64.max
        XCTAssertEqual(try CBOR.decode([0x43, 1, 2, 3]).bytes, [1, 2, 3])
        XCTAssertEqual(try CBOR.decode([0x62, 0xc3, 0xa9]).text, "é")
        XCTAssertEqual(try CBOR.decode([0xf4, ]), .bool(false))
        XCTAssertEqual(try CBOR.decode([0xf5]), .bool(true))
        XCTAssertEqual(try CBOR.decode([0xf6]), .null)
        let map = try CBOR.decode([0xa3, 0x01, 0x02, 0x26, 0x41, 0x09, 0x63, 0x66, 0x6d, 0x74, 0x80])
        XCTAssertEqual(map[1]?.int, 2)
        XCTAssertEqual(map[-7]?.bytes, [9])
        XCTAssertEqual(map["fmt"]?.array, [])
        XCTAssertNil(map[3])
        XCTAssertNil(map["x"])
        // Canonically equivalent but differently encoded text keys are distinct keys.
        let nfc = TestCBOR.text("\u{e9}"), nfd = TestCBOR.text("e\u{301}")
        XCTAssertEqual(try CBOR.decode(TestCBOR.map([(nfc, [0x01]), (nfd, [0x02])])).map?.count, 2)
        // Prefix decoding: consumed counts from the slice's start, whatever its indices.
        let buffer: [UInt8] = [0xff, 0x82, 0x01, 0x02, 0xa0, 0x00]
        let (item, consumed) = try CBOR.decodePrefix(buffer[1...])
        XCTAssertEqual(item, .array([.unsigned(1), .unsigned(2)]))
        XCTAssertEqual(consumed, 3)
        XCTAssertEqual(try CBOR.decode(Array(repeating: 0x81, count: 15) + [0x00]).array?.count, 1)  // 16 levels
        XCTAssertEqual(try CBOR.decode(TestCBOR.array(Array(repeating: [0x00], count: 256))).array?.count, 256)
    }

    func testRefusals() {
        XCTAssertEqual(decodeError([]), .unexpectedEnd)
        XCTAssertEqual(decodeError([0x00, 0x00]), .trailingBytes)
        XCTAssertEqual(decodeError([0x19, 0x01]), .unexpectedEnd)
        XCTAssertEqual(decodeError([0x5f, 0x41, 0x00, 0xff]), .indefiniteLength)
        XCTAssertEqual(decodeError([0x9f, 0xff]), .indefiniteLength)
        XCTAssertEqual(decodeError([0xbf, 0xff]), .indefiniteLength)
        XCTAssertEqual(decodeError([0xff]), .indefiniteLength)
        XCTAssertEqual(decodeError([0x1c]), .reservedAdditionalInformation)
        XCTAssertEqual(decodeError([0xc2, 0x41, 0x00]), .tagNotSupported)
        XCTAssertEqual(decodeError([0xf9, 0x3c, 0x00]), .floatNotSupported)
        XCTAssertEqual(decodeError([0xfb, 0, 0, 0, 0, 0, 0, 0, 0]), .floatNotSupported)
        XCTAssertEqual(decodeError([0xf7]), .simpleValueNotSupported)  // undefined
        XCTAssertEqual(decodeError([0xf8, 0x20]), .simpleValueNotSupported)
        XCTAssertEqual(decodeError([0xe0]), .simpleValueNotSupported)
        XCTAssertEqual(decodeError([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), .lengthExceedsInput)
        XCTAssertEqual(decodeError([0x7a, 0x7f, 0xff, 0xff, 0xff, 0x61]), .lengthExceedsInput)
        XCTAssertEqual(decodeError([0x42, 0x00]), .lengthExceedsInput)
        XCTAssertEqual(decodeError([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), .tooManyItems)
        XCTAssertEqual(decodeError([0x99, 0x00, 0xff] + Array(repeating: 0x00, count: 254)), .lengthExceedsInput)  // 255 items, 254 bytes
        XCTAssertEqual(decodeError(TestCBOR.array(Array(repeating: [0x00], count: 257))), .tooManyItems)
        XCTAssertEqual(decodeError(Array(repeating: 0x81, count: 16) + [0x00]), .nestedTooDeeply)
        XCTAssertEqual(decodeError(Array(repeating: 0x81, count: 1_000_000)), .nestedTooDeeply)
        XCTAssertEqual(decodeError(Array(repeating: 0xa1, count: 100_000)), .nestedTooDeeply)
        XCTAssertEqual(decodeError([0x62, 0xc3, 0x28]), .invalidUTF8)
        XCTAssertEqual(decodeError([0x62, 0xc0, 0x80]), .invalidUTF8)  // overlong NUL
        XCTAssertEqual(decodeError([0x63, 0xed, 0xa0, 0x80]), .invalidUTF8)  // surrogate
        XCTAssertEqual(decodeError([0xa1, 0x41, 0x00, 0x00]), .invalidMapKey)
        XCTAssertEqual(decodeError([0xa1, 0xf6, 0x00]), .invalidMapKey)
        XCTAssertEqual(decodeError([0xa2, 0x01, 0x00, 0x01, 0x00]), .duplicateMapKey)
        XCTAssertEqual(decodeError([0xa2, 0x01, 0x00, 0x18, 0x01, 0x00]), .duplicateMapKey)  // same key, longer head
        XCTAssertEqual(decodeError([0xa2, 0x61, 0x61, 0x00, 0x61, 0x61, 0x00]), .duplicateMapKey)
        XCTAssertEqual(decodeError([0xa2, 0x20, 0x00, 0x20, 0x00]), .duplicateMapKey)
    }

    /// 20,000 deterministic inputs through the decoder, the form parser and both ceremonies.
    /// The property is only that nothing traps: every input either passes or throws.
    func testFuzzNeverCrashes() throws {
        var rng = SeededGenerator(state: 0x5EED_2026)
        let ceremony = TestCeremony(challenge: Array(repeating: 0x42, count: 32))
        let authenticators = [TestAuthenticator.p256(), .ed25519(), .rsa()]

        struct Seed {
            let a: TestAuthenticator
            let clientData: [UInt8]
            let authData: [UInt8]
            let attestationObject: [UInt8]
            let json: String
        }
        var seeds: [Seed] = []
        for a in authenticators {
            let cd = ceremony.clientData(type: "webauthn.create")
            let ad = ceremony.authData(a, flags: 0x05, counter: 1, attested: true,
                                       extensions: TestCBOR.map([(TestCBOR.text("credProtect"), TestCBOR.int(1))]))
            for statement in [TestCeremony.Statement.none, .packedSelf] {
                let ao = ceremony.attestationObject(a, authData: ad, clientData: cd, statement: statement)
                seeds.append(Seed(a: a, clientData: cd, authData: ad, attestationObject: ao,
                                  json: ceremony.registrationJSON(id: a.credentialID, clientData: cd, attestationObject: ao)))
            }
        }
        let getData = ceremony.clientData(type: "webauthn.get")
        let assertionData = ceremony.authData(authenticators[0], flags: 0x05, counter: 9, attested: false)
        let assertionSignature = authenticators[0].sign(assertionData + Array(SHA256.hash(data: getData)))

        func mutate(_ input: [UInt8]) -> [UInt8] {
            var b = input
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:  // bit flips
                for _ in 0...Int.random(in: 0..<4, using: &rng) where !b.isEmpty {
                    b[Int.random(in: 0..<b.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                }
            case 1:  // truncation
                b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            case 2:  // a length head made huge (byte string, text, array or map; 8-byte argument)
                guard !b.isEmpty else { break }
                let at = Int.random(in: 0..<b.count, using: &rng)
                let major = UInt8([2, 3, 4, 5].randomElement(using: &rng)!)
                let size = [UInt64.max, UInt64(Int64.max), UInt64(UInt32.max), UInt64(b.count - at)].randomElement(using: &rng)!
                b.replaceSubrange(at..<min(b.count, at + 9), with: [major << 5 | 27] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: size >> ($0 * 8)) })
            case 3:  // random bytes spliced in
                let at = Int.random(in: 0...b.count, using: &rng)
                b.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            default:  // a byte set to an interesting value
                guard !b.isEmpty else { break }
                b[Int.random(in: 0..<b.count, using: &rng)] = [0x00, 0x18, 0x1b, 0x1f, 0x5f, 0x7f, 0x9f, 0xbf, 0xff, 0xc0, 0xf7, 0xfb, 0x80, 0xa0]
                    .randomElement(using: &rng)!
            }
            return b
        }

        var outcomes: [String: Int] = [:]
        func record(_ body: () throws -> Void) {
            do { try body(); outcomes["accepted", default: 0] += 1 } catch { outcomes["\(error)", default: 0] += 1 }
        }
        func register(_ s: Seed, clientData: [UInt8]? = nil, attestationObject: [UInt8]) {
            let c = PostedCredential(id: s.a.credentialID, rawId: s.a.credentialID, type: "public-key", clientDataJSON: clientData ?? s.clientData,
                                     attestationObject: attestationObject)
            record { _ = try WebAuthn.register(c, challenge: ceremony.challenge, rp: ceremony.rp, requireUserVerification: true) }
        }

        // The unmutated seeds pass: the mutations below start from valid ceremonies.
        for s in seeds { register(s, attestationObject: s.attestationObject) }
        XCTAssertEqual(outcomes["accepted"], seeds.count)

        for _ in 0..<20_000 {
            let s = seeds.randomElement(using: &rng)!
            switch Int.random(in: 0..<7, using: &rng) {
            case 0:  // random bytes
                let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                record { _ = try CBOR.decode(bytes) }
                record { _ = try CBOR.decodePrefix(bytes[...]) }
                record { _ = try COSEKey(bytes: bytes) }
            case 1:  // mutated attestation object, through the decoder and the ceremony
                let ao = mutate(s.attestationObject)
                record { _ = try CBOR.decode(ao) }
                register(s, attestationObject: ao)
            case 2:  // mutated authenticator data inside a well-formed attestation object
                let ao = ceremony.attestationObject(s.a, authData: mutate(s.authData), clientData: s.clientData, statement: .none)
                register(s, attestationObject: ao)
            case 3:  // mutated client data
                register(s, clientData: mutate(s.clientData), attestationObject: s.attestationObject)
            case 4:  // mutated posted JSON
                var json = Array(s.json.utf8)
                json = mutate(json)
                record {
                    let c = try PostedCredential.parse(json: String(decoding: json, as: UTF8.self))
                    _ = try WebAuthn.register(c, challenge: ceremony.challenge, rp: ceremony.rp, requireUserVerification: false)
                }
            case 5:  // mutated assertion parts
                let a = authenticators[0]
                let c = PostedCredential(id: a.credentialID, rawId: a.credentialID, type: "public-key",
                                         clientDataJSON: Bool.random(using: &rng) ? mutate(getData) : getData,
                                         authenticatorData: Bool.random(using: &rng) ? mutate(assertionData) : assertionData,
                                         signature: Bool.random(using: &rng) ? mutate(assertionSignature) : assertionSignature)
                record { _ = try WebAuthn.authenticate(c, challenge: ceremony.challenge, rp: ceremony.rp, publicKey: a.cose,
                                                       storedSignCount: 3, requireUserVerification: false) }
            default:  // mutated stored key
                let a = authenticators[0]
                let c = PostedCredential(id: a.credentialID, rawId: a.credentialID, type: "public-key", clientDataJSON: getData,
                                         authenticatorData: assertionData, signature: assertionSignature)
                record { _ = try WebAuthn.authenticate(c, challenge: ceremony.challenge, rp: ceremony.rp, publicKey: mutate(s.a.cose),
                                                       storedSignCount: 0, requireUserVerification: false) }
            }
        }
        XCTAssertGreaterThan(outcomes.count, 10, "the mutations should reach many different refusals: \(outcomes)")
    }
}
