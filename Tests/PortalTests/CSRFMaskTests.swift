import Crypto
import Foundation
import IdP
import Testing
@testable import Portal

/// BREACH and the CSRF token: a fresh mask in every response, one secret underneath.
@Suite struct MaskedCSRF {
    let browser = Browser(secure: false, key: SymmetricKey(size: .bits256), sessionTTL: 3600)
    let id = SystemRandom().token()

    @Test func every_token_is_different_and_every_one_is_valid() {
        let tokens = (0..<20).map { _ in browser.csrfToken(browserID: id) }
        #expect(Set(tokens).count == tokens.count)
        for t in tokens {
            #expect(t.utf8.count == 86)
            #expect(t.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) == t, "URL-safe")
            #expect(browser.csrfValid(t, browserID: id))
        }
        // Nor does the secret show through: no two tokens share their second half.
        #expect(Set(tokens.map { $0.suffix(43) }).count == tokens.count)
    }

    @Test func tampered_short_long_and_garbage_tokens_are_refused() {
        let t = browser.csrfToken(browserID: id)
        func flip(_ s: String, at i: Int) -> String {
            var c = Array(s)
            c[i] = c[i] == "A" ? "B" : "A"
            return String(c)
        }
        let bad = [
            "", "x", "!!!!", String(t.dropLast()), t + "A", String(t.dropLast(2)), flip(t, at: 0), flip(t, at: 10), flip(t, at: 50), flip(t, at: 84),
            String(repeating: "A", count: 86), String(t.prefix(43)),
            // The unmasked secret (the old form) and padded or standard base64 spellings.
            Secrets.hmac(browser.key, "csrf\u{0}" + id), t + "==", t.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "x",
            String(repeating: "é", count: 43),
        ]
        for b in bad where b != t {
            #expect(!browser.csrfValid(b, browserID: id), "\(b)")
        }
        // A good token for another browser is no good here.
        #expect(!browser.csrfValid(t, browserID: SystemRandom().token()))
        // Nor from another portal's key.
        let other = Browser(secure: false, key: SymmetricKey(size: .bits256), sessionTTL: 3600)
        #expect(!other.csrfValid(t, browserID: id))
    }
}
