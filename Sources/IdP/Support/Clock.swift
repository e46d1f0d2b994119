import Foundation

/// Where "now" comes from. Injected everywhere so that expiry, rotation and
/// grace windows are tested without sleeping.
public protocol Clock: Sendable {
    func now() -> Date
}

public struct SystemClock: Clock {
    public init() {}
    public func now() -> Date {
        // Whole seconds only: JWT times are integers and comparisons must agree with them.
        Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
    }
}

/// A clock tests move by hand.
public final class ManualClock: Clock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = start }

    public func now() -> Date { lock.withLock { current } }
    public func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
    public func set(_ date: Date) { lock.withLock { current = date } }
}

/// Source of secret random bytes. The system one reads the kernel CSPRNG.
public protocol RandomSource: Sendable {
    func bytes(_ count: Int) -> [UInt8]
}

public struct SystemRandom: RandomSource {
    public init() {}
    public func bytes(_ count: Int) -> [UInt8] {
        // SystemRandomNumberGenerator is getrandom(2) / arc4random: a CSPRNG on every platform Swift supports.
        var generator = SystemRandomNumberGenerator()
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = generator.next()
            withUnsafeBytes(of: &word) { raw in
                for b in raw where i < count { out[i] = b; i += 1 }
            }
        }
        return out
    }
}

extension RandomSource {
    /// A URL-safe random token of `byteCount` bytes of entropy.
    public func token(byteCount: Int = 32) -> String { Base64URL.encode(bytes(byteCount)) }

    /// A random identifier an operator passes on a command line (a session or family id): a token
    /// that does not start with "-", which an argument parser would read as an option (1 in 64 did:
    /// `portal session revoke -Xy…` answered "give a session id").
    public func identifier(byteCount: Int = 16) -> String {
        while true {
            let t = token(byteCount: byteCount)
            if !t.hasPrefix("-") { return t }
        }
    }

    /// A random UUID-formatted identifier (version 4 layout).
    public func uuid() -> String {
        var b = bytes(16)
        b[6] = (b[6] & 0x0f) | 0x40
        b[8] = (b[8] & 0x3f) | 0x80
        let hex = b.map { String(format: "%02x", $0) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }
}
