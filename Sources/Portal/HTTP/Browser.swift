import Crypto
import Foundation
import Hummingbird
import IdP

/// Cookies and CSRF for the browser-facing pages.
///
/// - `portal_browser`: random, binds pending authorizations and CSRF tokens to one browser.
/// - `portal_session`: the login session (only its hash is stored).
/// Under https both get the `__Host-` prefix and `Secure`; always HttpOnly and SameSite=Lax
/// (Lax so the session survives the top-level redirect back from a client).
struct Browser: Sendable {
    let secure: Bool
    let key: SymmetricKey
    let sessionTTL: TimeInterval

    var browserCookieName: String { secure ? "__Host-portal_browser" : "portal_browser" }
    var sessionCookieName: String { secure ? "__Host-portal_session" : "portal_session" }

    func cookie(_ name: String, _ value: String, maxAge: Int?) -> String {
        var c = "\(name)=\(value); Path=/; HttpOnly; SameSite=Lax"
        if let maxAge { c += "; Max-Age=\(maxAge)" }
        if secure { c += "; Secure" }
        return c
    }

    /// The browser id from the request, or a new one with the Set-Cookie header to send.
    func browserID(_ request: Request) -> (id: String, setCookie: String?) {
        if let v = request.cookie(browserCookieName), v.utf8.count == 43, Base64URL.decode(v) != nil { return (v, nil) }
        let v = SystemRandom().token()
        return (v, cookie(browserCookieName, v, maxAge: 400 * 86400))
    }

    /// A Set-Cookie for a brand-new browser id (rotates the CSRF token; sent at every sign-in).
    func freshBrowserCookie() -> String { freshBrowser().setCookie }
    func freshBrowser() -> (id: String, setCookie: String) {
        let id = SystemRandom().token()
        return (id, cookie(browserCookieName, id, maxAge: 400 * 86400))
    }

    /// The CSRF token for this browser, masked afresh on every call as Django does:
    /// base64url(pad ‖ pad XOR secret) with a random 32-byte pad, the secret being an HMAC of the
    /// browser id. Pages are gzipped next to reflected input (`next=`, the username); a token that
    /// differs in every response gives BREACH nothing stable to guess.
    func csrfToken(browserID: String) -> String {
        let pad = SystemRandom().bytes(Self.csrfSize)
        return Base64URL.encode(pad + zip(pad, csrfSecret(browserID)).map { $0 ^ $1 })
    }

    /// Constant-time check of the form's CSRF token against the browser cookie.
    func csrfValid(_ request: Request, form: FormParameters) -> Bool {
        guard let b = request.cookie(browserCookieName), let sent = form["csrf"] else { return false }
        return csrfValid(sent, browserID: b)
    }

    /// Unmasks `sent` and compares it with the browser's secret in constant time. Anything but
    /// exactly 64 bytes in canonical base64url is refused.
    func csrfValid(_ sent: String, browserID: String) -> Bool {
        guard sent.utf8.count == Self.csrfEncodedSize, let bytes = Base64URL.decode(sent), bytes.count == 2 * Self.csrfSize else { return false }
        let unmasked = (0..<Self.csrfSize).map { bytes[$0] ^ bytes[Self.csrfSize + $0] }
        return Secrets.constantTimeEqual(unmasked, csrfSecret(browserID))
    }

    static let csrfSize = 32
    /// base64url of 64 bytes, unpadded.
    static let csrfEncodedSize = 86

    private func csrfSecret(_ browserID: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(("csrf\u{0}" + browserID).utf8), using: key))
    }

    func sessionCookie(_ value: String) -> String { cookie(sessionCookieName, value, maxAge: Int(sessionTTL)) }
    func clearSessionCookie() -> String { cookie(sessionCookieName, "", maxAge: 0) }

    /// Set at sign-out, cleared at the next sign-in: the login page then does not start Kerberos
    /// (SPNEGO) by itself, so signing out is not undone by the browser's ticket a moment later.
    var signedOutCookieName: String { secure ? "__Host-portal_signed_out" : "portal_signed_out" }
    func signedOutCookie() -> String { cookie(signedOutCookieName, "1", maxAge: Int(sessionTTL)) }
    func clearSignedOutCookie() -> String { cookie(signedOutCookieName, "", maxAge: 0) }
}

extension Request {
    /// Reads an application/x-www-form-urlencoded body of at most `limit` bytes.
    /// Throws `BodyError.tooLarge`, `.wrongType` or `.malformed`.
    mutating func form(limit: Int) async throws(BodyError) -> FormParameters {
        let type = headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else { throw .wrongType }
        if let len = headers[.contentLength].flatMap(Int.init), len > limit { throw .tooLarge }
        let buffer: ByteBuffer
        do { buffer = try await body.collect(upTo: limit) } catch { throw .tooLarge }
        guard let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes),
              let p = FormParameters.parse(text) else { throw .malformed }
        return p
    }

    var queryParameters: FormParameters? { FormParameters.parse(uri.query ?? "") }
}

enum BodyError: Error { case tooLarge, wrongType, malformed }
