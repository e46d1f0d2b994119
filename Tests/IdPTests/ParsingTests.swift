import Foundation
import IdP
import Testing

@Suite("Parameter, PKCE and redirect URI rules")
struct ParsingTests {
    @Test func formParametersKeepEveryOccurrenceAndDecodeStrictly() throws {
        let p = try #require(FormParameters.parse("a=1&b=two+words&c=%2F%3D&a=2&empty=&flag"))
        #expect(p.pairs.count == 6)
        #expect(throws: OAuthError.invalidRequest("parameter 'a' is repeated")) { try p.single("a") }
        #expect(try p.single("b") == "two words")
        #expect(try p.single("c") == "/=")
        #expect(try p.single("empty") == nil, "an empty value counts as absent")
        #expect(try p.single("flag") == nil)
        #expect(try p.single("missing") == nil)
        #expect(throws: OAuthError.self) { try p.required("missing") }
        #expect(FormParameters.parse("a=%zz") == nil)
        #expect(FormParameters.parse("a=%C3") == nil, "invalid UTF-8 is refused")
        #expect(FormParameters.parse("a=%") == nil)
    }

    @Test func encodedParametersParseBackToThemselves() throws {
        let pairs = [("redirect_uri", "https://app.example.com/cb?x=1&y=2"), ("state", "ä ö + / = &"), ("nonce", "n")]
        let parsed = try #require(FormParameters.parse(FormParameters.encode(pairs)))
        #expect(parsed == FormParameters(pairs))
    }

    @Test func pkceFollowsRFC7636() {
        // RFC 7636 Appendix B.
        #expect(PKCE.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE.isValidVerifier(String(repeating: "a", count: 43)))
        #expect(PKCE.isValidVerifier(String(repeating: "a", count: 128)))
        #expect(!PKCE.isValidVerifier(String(repeating: "a", count: 42)))
        #expect(!PKCE.isValidVerifier(String(repeating: "a", count: 129)))
        #expect(!PKCE.isValidVerifier(String(repeating: "a", count: 42) + "+"))
        #expect(PKCE.isValidChallenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"))
        #expect(!PKCE.isValidChallenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="))
        #expect(!PKCE.isValidChallenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"))
    }

    @Test func base64URLHasOneSpellingPerValue() {
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        #expect(Base64URL.decode("-_9") == nil, "non-zero padding bits")
        #expect(Base64URL.decode("-_8=") == nil, "padding")
        #expect(Base64URL.decode("+/8") == nil, "standard alphabet")
        #expect(Base64URL.decode("-_ 8") == nil, "whitespace")
        #expect(Base64URL.decode("A") == nil)
    }

    @Test(arguments: [
        ("https://app.example.com/cb", true),
        ("http://localhost:8000", true),
        ("http://127.0.0.1:18000/callback", true),
        ("http://[::1]:8000/cb", true),
        ("http://app.example.com/cb", false),
        ("https://app.example.com/cb#frag", false),
        ("javascript:alert(1)", false),
        ("/relative/path", false),
        ("ftp://files.example.com/", false),
    ])
    func redirectURIsMustBeHTTPSOrLoopbackWithoutFragment(_ uri: String, _ acceptable: Bool) {
        #expect((ClientRegistry.redirectURIProblem(uri) == nil) == acceptable)
    }

    @Test func clientSecretsAreStoredSaltedAndComparedExactly() {
        let hash = Secrets.hashClientSecret("s3cret", random: SystemRandom())
        #expect(hash.hasPrefix("sha256$"))
        #expect(!hash.contains("s3cret"))
        #expect(Secrets.verifyClientSecret("s3cret", hash: hash))
        #expect(!Secrets.verifyClientSecret("s3cret ", hash: hash))
        #expect(!Secrets.verifyClientSecret("S3cret", hash: hash))
        #expect(Secrets.hashClientSecret("s3cret", random: SystemRandom()) != hash, "salted")
        #expect(!Secrets.verifyClientSecret("s3cret", hash: "plain$s3cret"))
    }
}
