import Foundation
import HTTPTypes
#if canImport(Glibc)
import Glibc
#endif

/// A set of address ranges ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
struct CIDRSet: Sendable, Equatable {
    struct Range: Sendable, Equatable {
        let bytes: [UInt8]   // 4 or 16
        let prefix: Int
    }
    let ranges: [Range]

    /// Parses every entry; returns the entries that are not valid ranges in `invalid`.
    static func parse(_ entries: [String]) -> (set: CIDRSet, invalid: [String]) {
        var ranges: [Range] = [], invalid: [String] = []
        for e in entries {
            let parts = e.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1)
            guard let first = parts.first, let bytes = ipBytes(String(first)) else { invalid.append(e); continue }
            let maxPrefix = bytes.count * 8
            let prefix = parts.count == 2 ? Int(parts[1]) : maxPrefix
            guard let prefix, prefix >= 0, prefix <= maxPrefix else { invalid.append(e); continue }
            ranges.append(Range(bytes: bytes, prefix: prefix))
        }
        return (CIDRSet(ranges: ranges), invalid)
    }

    var isEmpty: Bool { ranges.isEmpty }

    func contains(_ address: String) -> Bool {
        guard !ranges.isEmpty, let a = Self.ipBytes(address) else { return false }
        return ranges.contains { r in
            guard r.bytes.count == a.count else { return false }
            var bits = r.prefix, i = 0
            while bits >= 8 { if r.bytes[i] != a[i] { return false }; bits -= 8; i += 1 }
            if bits == 0 { return true }
            let mask = UInt8(0xff) << (8 - bits)
            return r.bytes[i] & mask == a[i] & mask
        }
    }

    /// The address's bytes (IPv4-mapped IPv6 as IPv4), or nil when it is not an IP address.
    static func ipBytes(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, s, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return Array(b[12..<16]) }
        return b
    }
}

/// The client's address behind trusted reverse proxies. The one header the proxies set
/// (`server.forwarded_header`: `X-Forwarded-For` by default, or `Forwarded`) is read only when the
/// peer itself is a trusted proxy, right to left, skipping trusted hops: the first untrusted
/// address is the client. The other header is never read (a client could send it). A forged entry
/// further left is never reached; anything unparsable stops the walk at the last trusted hop.
enum ClientAddress {
    enum Header: String, Sendable { case xForwardedFor = "x-forwarded-for", forwarded }
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let forwarded = HTTPField.Name("Forwarded")!

    static func resolve(peer: String, headers: HTTPFields, trusted: CIDRSet, header: Header = .xForwardedFor) -> String {
        guard !trusted.isEmpty, trusted.contains(peer) else { return peer }
        var hops: [String] = []
        if header == .xForwardedFor {
            for v in headers[values: xForwardedFor] { hops += v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        } else {
            for v in headers[values: forwarded] {
                for element in v.split(separator: ",") {
                    for pair in element.split(separator: ";") {
                        let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                        if kv.count == 2, kv[0].lowercased() == "for" { hops.append(forwardedNode(kv[1])) }
                    }
                }
            }
        }
        var client = peer
        for hop in hops.reversed() {
            guard CIDRSet.ipBytes(hop) != nil else { break }
            client = hop
            if !trusted.contains(hop) { break }
        }
        return client
    }

    /// `"[2001:db8::1]:4711"` → `2001:db8::1`; `192.0.2.60:80` → `192.0.2.60` (RFC 7239 §6).
    static func forwardedNode(_ raw: String) -> String {
        var s = raw
        if s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 { s = String(s.dropFirst().dropLast()) }
        if s.hasPrefix("["), let end = s.firstIndex(of: "]") { return String(s[s.index(after: s.startIndex)..<end]) }
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") { return String(s[..<colon]) }
        return s
    }
}
