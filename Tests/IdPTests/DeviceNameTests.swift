import Foundation
import IdP
import Testing

@Suite("Device names from User-Agent headers")
struct DeviceNameTests {
    /// Real User-Agent headers, as the programs send them.
    static let cases: [(String, String)] = [
        ("kubectl/v1.32.0 (linux/amd64) kubernetes/abc123", "kubectl 1.32 on linux/amd64"),
        ("kubectl/v1.29.3 (darwin/arm64) kubernetes/6813625", "kubectl 1.29 on darwin/arm64"),
        ("kubectl.exe/v1.30.2 (windows/amd64) kubernetes/3968350", "kubectl 1.30 on windows/amd64"),
        ("kubectl/v1.30.1+k3s1 (linux/arm64) kubernetes/80b4e5c", "kubectl 1.30 on linux/arm64"),
        ("k9s/v0.0.0 (linux/amd64) kubernetes/$Format", "k9s 0.0 on linux/amd64"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome on Linux"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox on Windows"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0", "Firefox on Linux"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
         "Safari on macOS"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
         "Chrome on macOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
         "Edge on Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
         "Chrome on Windows"),
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
         "Chrome on Android"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
         "Safari on iPhone"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
         "Chrome on iPhone"),
        ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
         "Safari on iPad"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
         "Chrome on ChromeOS"),
        ("Go-http-client/1.1", "Go program"),
        ("Go-http-client/2.0", "Go program"),
        ("curl/8.5.0", "curl"),
        ("python-requests/2.31.0", "Python program"),
        ("Python-urllib/3.12", "Python program"),
        ("python-httpx/0.27.0", "Python program"),
        ("mod_auth_openidc/2.4.15.1", "mod_auth_openidc"),
        ("kubelogin/v1.28.1 (linux/amd64) kubernetes/abcdef0", "kubelogin"),
        ("Wget/1.21.4", "Wget"),
        ("", "Unknown device"),
        ("  \u{0}\t ", "Unknown device"),
        ("SomeTool/3.1 (+https://example.com)", "SomeTool"),
        ("<script>alert(1)</script>", "scriptalert1"),
    ]

    @Test(arguments: cases)
    func describesTheDevice(_ userAgent: String, _ expected: String) {
        #expect(DeviceName.describe(userAgent: userAgent) == expected)
    }

    @Test func identifiersPrintableDropsControlsTrimsAndCuts() {
        #expect(Identifiers.printable("  a\u{0}b\u{7f}c\u{85}d\te\r\n  ") == "abcde")
        #expect(Identifiers.printable(String(repeating: "é", count: 300)).count == 200)
        #expect(Identifiers.printable("ünïcödé ✓ 日本") == "ünïcödé ✓ 日本")
        #expect(Identifiers.printable("abcdef", limit: 3) == "abc")
    }
}
