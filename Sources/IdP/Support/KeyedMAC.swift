import Crypto
import Foundation

/// HMAC-SHA256 under a fixed key with the key schedule done once: `HMAC(key:)` pads the key and
/// hashes the inner and outer blocks, and every message starts from a copy of that state instead
/// of doing it again (≈ 1.5 % of a refresh's CPU when done per token, docs/performance.md).
public struct KeyedMAC: Sendable {
    private let keyed: HMAC<SHA256>

    public init(_ key: SymmetricKey) { keyed = HMAC<SHA256>(key: key) }

    public func code<D: DataProtocol>(_ message: D) -> HMAC<SHA256>.MAC {
        var h = keyed
        h.update(data: message)
        return h.finalize()
    }

    /// Whether `mac` is this key's code for `message` (constant-time comparison).
    public func isValid<M: DataProtocol, D: DataProtocol>(_ mac: M, for message: D) -> Bool {
        code(message) == mac
    }
}
