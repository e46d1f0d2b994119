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

    @Test func parametersWithNothingEncodedAreTakenAsTheyAreAndStillChecked() throws {
        let p = try #require(FormParameters.parse("grant_type=refresh_token&refresh_token=Ab-_9.~&name=äö"))
        #expect(try p.single("grant_type") == "refresh_token")
        #expect(try p.single("refresh_token") == "Ab-_9.~")
        #expect(try p.single("name") == "äö")
        #expect(FormParameters.parse("a=x\u{01}y") == nil, "a raw control character is refused like an encoded one")
        #expect(FormParameters.parse("a=x%01y") == nil)
        #expect(FormParameters.parse("a=x\u{00}") == nil)
    }

    @Test func hexAndTokenHashesAreTheStandardOnes() {
        #expect(Secrets.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Secrets.sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Secrets.sha256Hex("ä") == "33e6d73fee82904c8d7afb78de1154d1e8dc2a0edb08120e63df5b9385c2d9cc")
        #expect(Secrets.hex([0x00, 0x0f, 0xf0, 0xff, 0x5a]) == "000ff0ff5a")
        #expect(Secrets.hex([UInt8]()) == "")
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
