import Crypto
import Foundation
import Hummingbird
import IdP
import Templates

/// Post/Redirect/Get for the browser pages: a POST changes something, then answers 303 to a GET.
///
/// - What to say about it travels in a short-lived cookie (`portal_flash`), read once, HMAC-signed
///   over the browser id, the time it was made and the text: it is shown only in the browser it
///   was made for, for two minutes at most.
/// - A one-time secret (a new credential's token, a kubectl command with a refresh token) is sealed
///   with a fresh key, the ciphertext stored as a `Reveal` row and the key given to this browser alone
///   in `portal_reveal`. `GET /shown/<id>` takes the row (once, on every replica) and opens it with
///   the key: the database alone never holds a usable secret, the cookie alone holds nothing after
///   the row is gone, and a reload says it was already shown. The row is bound to the browser and
///   the person: nobody else can take it, or use it up.
struct Flash: Sendable {
    var notice: String?
    var error: String?
}

extension Browser {
    var flashCookieName: String { secure ? "__Host-portal_flash" : "portal_flash" }
    var revealCookieName: String { secure ? "__Host-portal_reveal" : "portal_reveal" }

    static let flashLifetime: TimeInterval = 120

    func flashSignature(_ browserID: String, _ issued: String, _ payload: some StringProtocol) -> String {
        Secrets.hmac(key, "flash\u{0}" + browserID + "\u{0}" + issued + "\u{0}" + payload)
    }

    /// A Set-Cookie carrying a notice (or an error) to the next page of this browser.
    func flashCookie(browserID: String, notice: String? = nil, error: String? = nil) -> String {
        var fields: [String: String] = [:]
        if let notice { fields["n"] = String(notice.prefix(600)) }
        if let error { fields["e"] = String(error.prefix(600)) }
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        let payload = Base64URL.encode(data)
        let issued = String(Int(Date().timeIntervalSince1970))
        return cookie(flashCookieName, issued + "." + payload + "." + flashSignature(browserID, issued, payload), maxAge: Int(Self.flashLifetime))
    }

    /// The flash of this request, if any (made for this browser, less than two minutes ago), and the Set-Cookie that clears it.
    func takeFlash(_ request: Request) -> (Flash?, [String]) {
        guard let raw = request.cookie(flashCookieName), !raw.isEmpty else { return (nil, []) }
        let clear = [cookie(flashCookieName, "", maxAge: 0)]
        let parts = raw.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let bid = request.cookie(browserCookieName), let issued = TimeInterval(parts[0]),
              abs(Date().timeIntervalSince1970 - issued) <= Self.flashLifetime,
              Secrets.constantTimeEqual(String(parts[2]), flashSignature(bid, String(parts[0]), parts[1])),
              let data = Base64URL.decode(String(parts[1])),
              let fields = (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: String]
        else { return (nil, clear) }
        return (Flash(notice: fields["n"], error: fields["e"]), clear)
    }

    /// 303 to `location` with a notice for the page it shows. `browserID`: the id the browser will
    /// have (a new one set in `cookies`); otherwise the request's.
    func done(_ request: Request, _ location: String, notice: String? = nil, error: String? = nil, cookies: [String] = [],
              browserID: String? = nil) -> Response {
        var cookies = cookies
        let bid: String
        if let browserID { bid = browserID } else {
            let (id, setCookie) = self.browserID(request)
            bid = id
            if let setCookie { cookies.append(setCookie) }
        }
        return Responses.redirect(location, status: .seeOther, cookies: cookies + [flashCookie(browserID: bid, notice: notice, error: error)])
    }
}

/// The sealed one-time payloads behind `GET /shown/<id>`.
struct Reveals: Sendable {
    let runtime: Runtime
    let browser: Browser
    static let lifetime: TimeInterval = 600

    /// Who may see a reveal: this browser, signed in as this person.
    static func binding(browserID: String, subject: String) -> String { Secrets.sha256Hex(browserID + "\u{0}" + subject) }

    /// Seals `payload`, stores it for this browser and person, and answers 303 to the page that shows it once.
    func stash(kind: String, payload: [String: String], request: Request, owner: Identity, notice: String? = nil) async throws -> Response {
        let (bid, setBrowser) = browser.browserID(request)
        let key = SymmetricKey(size: .bits256)
        let plain = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        guard let sealed = try AES.GCM.seal(plain, using: key).combined else { throw RevealError.sealing }
        let id = runtime.random.token(byteCount: 18)
        let now = runtime.clock.now()
        try await runtime.storage.createReveal(Reveal(id: id, browserHash: Self.binding(browserID: bid, subject: owner.subject), kind: kind,
                                                      sealed: Base64URL.encode(sealed),
                                                      createdAt: now, expiresAt: now + Self.lifetime))
        let keyText = key.withUnsafeBytes { Base64URL.encode(Data($0)) }
        var cookies = setBrowser.map { [$0] } ?? []
        cookies.append(browser.cookie(browser.revealCookieName, id + "." + keyText, maxAge: Int(Self.lifetime)))
        return browser.done(request, "/shown/" + id, notice: notice, cookies: cookies, browserID: bid)
    }

    /// The payload behind `id`, once: nil when it was already shown, expired, or belongs to another browser or person.
    func open(id: String, request: Request, owner: Identity) async throws -> (kind: String, payload: [String: String])? {
        guard id.utf8.count <= 64, let raw = request.cookie(browser.revealCookieName),
              let bid = request.cookie(browser.browserCookieName) else { return nil }
        let parts = raw.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, Secrets.constantTimeEqual(String(parts[0]), id), let keyData = Base64URL.decode(String(parts[1])),
              keyData.count == 32 else { return nil }
        guard let row = try await runtime.storage.takeReveal(id: id, browserHash: Self.binding(browserID: bid, subject: owner.subject),
                                                             now: runtime.clock.now()),
              let sealed = Base64URL.decode(row.sealed),
              let box = try? AES.GCM.SealedBox(combined: Data(sealed)),
              let plain = try? AES.GCM.open(box, using: SymmetricKey(data: Data(keyData))),
              let payload = (try? JSONSerialization.jsonObject(with: plain)) as? [String: String]
        else { return nil }
        return (row.kind, payload)
    }

    func clearCookie() -> String { browser.cookie(browser.revealCookieName, "", maxAge: 0) }
}

enum RevealError: Error { case sealing }

extension Browser {
    /// The top bar of a signed-in page, and the Set-Cookie of a new browser id if there was none.
    func chrome(_ request: Request, _ identity: Identity, isAdmin: Bool, section: Chrome.Section) -> (Chrome, [String]) {
        let (bid, setCookie) = browserID(request)
        return (Chrome(csrf: csrfToken(browserID: bid), username: identity.username, isAdmin: isAdmin, section: section), setCookie.map { [$0] } ?? [])
    }
}
