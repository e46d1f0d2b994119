import Crypto
import Foundation

public struct JOSEError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public static func malformed(_ what: String) -> JOSEError { .init(description: "malformed \(what)") }
    public static let badSignature = JOSEError(description: "signature does not verify")
    public static let unknownKey = JOSEError(description: "unknown key id")
    public static let algorithmNotAllowed = JOSEError(description: "algorithm not allowed")
}

/// Compact JWS (RFC 7515) signing and verification for the algorithms the portal uses.
public enum JWS {
    public static func sign(payload: Data, key: SigningKey, type: String = "JWT") throws -> String {
        let header = #"{"alg":"\#(key.algorithm.rawValue)","kid":"\#(key.kid)","typ":"\#(type)"}"#
        let signingInput = Base64URL.encode(Data(header.utf8)) + "." + Base64URL.encode(payload)
        let signature = try key.sign(Data(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    public struct Verified: Sendable {
        public let header: [String: String]
        public let payload: Data
    }

    /// Verifies a compact JWS against `keys` (by kid). Only RS256/ES256 are accepted:
    /// `alg: none`, HMAC algorithms and any mismatch between `alg` and the key's type are refused.
    public static func verify(_ token: String, keys: [String: VerificationKey]) throws -> Verified {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Base64URL.decode(parts[0]),
              let payloadBytes = Base64URL.decode(parts[1]),
              let signature = Base64URL.decode(parts[2]),
              let headerObj = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any]
        else { throw JOSEError.malformed("JWS") }
        guard let alg = headerObj["alg"] as? String, let algorithm = SigningAlgorithm(rawValue: alg) else {
            throw JOSEError.algorithmNotAllowed
        }
        if headerObj["crit"] != nil { throw JOSEError.malformed("JWS crit header") }
        guard let kid = headerObj["kid"] as? String, let key = keys[kid] else { throw JOSEError.unknownKey }
        guard key.algorithm == algorithm else { throw JOSEError.algorithmNotAllowed }
        let signingInput = Data((parts[0] + "." + parts[1]).utf8)
        guard key.verify(Data(signature), for: signingInput) else { throw JOSEError.badSignature }
        var header: [String: String] = [:]
        for (k, v) in headerObj { if let s = v as? String { header[k] = s } }
        return Verified(header: header, payload: Data(payloadBytes))
    }
}
