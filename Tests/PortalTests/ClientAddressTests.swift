import HTTPTypes
import Testing
@testable import Portal

@Suite("Client address behind trusted proxies")
struct ClientAddressTests {
    static let proxies = CIDRSet.parse(["10.0.0.0/8", "2001:db8:ffff::/48"]).set

    static func headers(_ pairs: [(String, String)]) -> HTTPFields {
        var h = HTTPFields()
        for (k, v) in pairs { h.append(HTTPField(name: HTTPField.Name(k)!, value: v)) }
        return h
    }

    @Test func anUntrustedPeersHeaderIsIgnored() {
        let h = Self.headers([("X-Forwarded-For", "203.0.113.9")])
        #expect(ClientAddress.resolve(peer: "192.0.2.50", headers: h, trusted: Self.proxies) == "192.0.2.50")
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: h, trusted: CIDRSet(ranges: [])) == "10.1.2.3", "no proxies configured")
    }

    @Test func theRightmostUntrustedHopIsTheClient() {
        // A forged entry on the left is never reached: the proxy appended the real client.
        let h = Self.headers([("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.0.0.7")])
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: h, trusted: Self.proxies) == "203.0.113.9")
    }

    @Test func severalHeaderLinesAreOneList() {
        let h = Self.headers([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "10.0.0.9")])
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: h, trusted: Self.proxies) == "198.51.100.1")
    }

    @Test func onlyTheConfiguredHeaderIsRead() {
        // The proxy sets Forwarded; an X-Forwarded-For the client sent itself is ignored.
        let h = Self.headers([("Forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8:ffff::1]:4711\""), ("X-Forwarded-For", "6.6.6.6")])
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: h, trusted: Self.proxies, header: .forwarded) == "192.0.2.60")
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: Self.headers([("Forwarded", "for=192.0.2.60")]), trusted: Self.proxies) == "10.1.2.3",
                "X-Forwarded-For configured: Forwarded is not read")
    }

    @Test func junkStopsTheWalk() {
        let h = Self.headers([("X-Forwarded-For", "203.0.113.9, not-an-ip")])
        #expect(ClientAddress.resolve(peer: "10.1.2.3", headers: h, trusted: Self.proxies) == "10.1.2.3")
    }

    @Test func cidrMatching() {
        let (set, invalid) = CIDRSet.parse(["192.0.2.0/25", "::1", "2001:db8::/32", "10.0.0.0/33", "nonsense"])
        #expect(invalid == ["10.0.0.0/33", "nonsense"])
        #expect(set.contains("192.0.2.127"))
        #expect(!set.contains("192.0.2.128"))
        #expect(set.contains("::1"))
        #expect(set.contains("2001:db8:1::5"))
        #expect(!set.contains("2001:db9::5"))
        #expect(set.contains("::ffff:192.0.2.1"), "IPv4-mapped addresses match IPv4 ranges")
    }
}
