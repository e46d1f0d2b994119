import Foundation
import Testing
@testable import Portal

/// HummingbirdOTP, as the portal calls it, against RFC 6238 Appendix B (SHA-1; the 8-digit values' last six digits).
@Suite struct TOTPCodesTests {
    @Test func codesMatchTheRFC6238TestVectors() {
        let codes = HummingbirdTOTPCodes()
        let secret = "12345678901234567890"
        // (time, 8-digit code): 59 → 94287082, 1111111109 → 07081804, 1234567890 → 89005924, 2000000000 → 69279037.
        for (time, code) in [(59, 94_287_082), (1_111_111_109, 7_081_804), (1_234_567_890, 89_005_924), (2_000_000_000, 69_279_037)] {
            #expect(codes.code(secret: secret, step: time / 30) == code % 1_000_000, "T=\(time)")
        }
        let uri = codes.provisioningURI(secret: secret, label: "portal.example.org:alice", issuer: "portal.example.org")
        #expect(uri.hasPrefix("otpauth://totp/") && uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") && uri.contains("issuer=portal.example.org"))
    }
}
