import CZlib
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import NIOCore
import Testing
@testable import Portal

/// Inflates a gzip body (zlib, gzip wrapper only); nil unless it is one whole, valid gzip stream.
func gunzip(_ buffer: ByteBuffer) -> [UInt8]? {
    var stream = z_stream()
    guard czlib_gunzip_init(&stream) == Z_OK else { return nil }
    defer { inflateEnd(&stream) }
    var input = Array(buffer.readableBytesView)
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    var rc = Z_OK
    input.withUnsafeMutableBufferPointer { source in
        stream.next_in = source.baseAddress
        stream.avail_in = uInt(source.count)
        while rc == Z_OK {
            chunk.withUnsafeMutableBufferPointer { target in
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                rc = inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: target[0..<(target.count - Int(stream.avail_out))])
            }
        }
    }
    return rc == Z_STREAM_END && stream.avail_in == 0 ? output : nil
}

let gzipAccepted: HTTPFields = [.acceptEncoding: "gzip, deflate, br"]

/// Masked tokens differ in every response: compare pages with them blanked out.
private func withoutCSRF(_ page: String) -> String {
    page.replacingOccurrences(of: #"name="csrf" value="[^"]*""#, with: #"name="csrf" value="""#, options: .regularExpression)
}

@Suite struct CompressionThroughThePortal {
    @Test func the_login_page_is_gzipped_for_a_client_that_accepts_it() async throws {
        try await withPortal { _, client in
            let plain = try await client.get("/login")
            #expect(plain.body.readableBytes >= Compression.minimumSize, "the test needs a page worth compressing")
            #expect(plain.headers[.contentEncoding] == nil)
            #expect(plain.headers[values: .vary].contains("Accept-Encoding"))

            let r = try await client.get("/login", headers: gzipAccepted)
            #expect(r.status == .ok)
            #expect(r.headers[.contentEncoding] == "gzip")
            #expect(r.headers[values: .vary].contains("Accept-Encoding"))
            #expect(r.headers[.contentLength] == String(r.body.readableBytes))
            #expect(r.body.readableBytes < plain.body.readableBytes)
            let page = String(decoding: try #require(gunzip(r.body)), as: UTF8.self)
            #expect(withoutCSRF(page) == withoutCSRF(plain.text))
            // Still a page with every security header.
            #expect(r.contentType == "text/html; charset=utf-8")
            #expect(r.headers[.contentSecurityPolicy] != nil)
            #expect(r.headers[.cacheControl] == "no-store")
        }
    }

    @Test func no_gzip_unless_the_client_accepts_it() async throws {
        try await withPortal { _, client in
            for value in ["identity", "gzip;q=0", "gzip; q=0.000, *", "deflate, br", "", "*;q=0", "gzip;q=nonsense"] {
                let r = try await client.get("/login", headers: [.acceptEncoding: value])
                #expect(r.status == .ok)
                #expect(r.headers[.contentEncoding] == nil, "Accept-Encoding: \(value)")
                #expect(r.text.contains("name=\"csrf\""), "Accept-Encoding: \(value)")
            }
            for value in ["*", "GZIP;Q=0.5", "br;q=1.0, gzip;q=0.001", "identity, x-gzip"] {
                let r = try await client.get("/login", headers: [.acceptEncoding: value])
                #expect(r.headers[.contentEncoding] == "gzip", "Accept-Encoding: \(value)")
            }
        }
    }

    @Test func accept_encoding_q_values() {
        #expect(Compression.acceptsGzip(["gzip"]))
        #expect(Compression.acceptsGzip(["deflate", "gzip;q=1"]))
        #expect(Compression.acceptsGzip(["*;q=0.1"]))
        #expect(!Compression.acceptsGzip([]))
        #expect(!Compression.acceptsGzip(["identity"]))
        #expect(!Compression.acceptsGzip(["gzip;q=0", "*"]))
        #expect(!Compression.acceptsGzip(["gzip;q=0.0"]))
        #expect(!Compression.acceptsGzip(["gzip;q=1.5"]))
        #expect(!Compression.acceptsGzip(["gzip;q="]))
    }

    @Test func the_token_endpoint_is_never_gzipped_and_pages_are() async throws {
        try await withPortal { p, client in
            let agent = Agent()
            let req = AuthRequest()
            let code = try await client.authorizationCode(p, agent, req)
            let token = try await client.token([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", req.redirectURI),
                                                ("client_id", req.clientID), ("code_verifier", try #require(req.verifier))], headers: gzipAccepted)
            #expect(token.status == .ok)
            #expect(token.body.readableBytes >= Compression.minimumSize, "a body that would otherwise be gzipped")
            #expect(token.headers[.cacheControl] == "no-store")
            #expect(token.headers[.contentEncoding] == nil)
            #expect(try token.json()["refresh_token"] != nil)

            // Signed-in pages are gzipped (their only secret, the CSRF token, is masked per response) …
            for uri in ["/", "/credentials"] {
                let page = try await client.get(uri, agent, headers: gzipAccepted)
                #expect(page.status == .ok, "\(uri)")
                #expect(page.headers[.cacheControl] == "no-store", "\(uri)")
                #expect(page.headers[.contentEncoding] == "gzip", "\(uri)")
                #expect(String(decoding: try #require(gunzip(page.body)), as: UTF8.self).contains("name=\"csrf\""), "\(uri)")
            }
            // (A page that shows a secret once is never gzipped: Tests/blackbox/test_compression.py, through /shown.)
        }
    }

    @Test func static_files_are_gzipped() async throws {
        try await withPortal { _, client in
            let plain = try await client.get("/static/portal.css")
            #expect(plain.status == .ok)
            #expect(plain.body.readableBytes >= Compression.minimumSize)
            let r = try await client.get("/static/portal.css", headers: gzipAccepted)
            #expect(r.headers[.contentEncoding] == "gzip")
            #expect(r.headers[.cacheControl] == "public, max-age=3600")
            #expect(r.headers[values: .vary].contains("Accept-Encoding"))
            #expect(try #require(gunzip(r.body)) == Array(plain.body.readableBytesView))

            // The portal's router answers HEAD only where a route does (none here): never gzipped either way.
            let head = try await client.execute(uri: "/static/portal.css", method: .head, headers: gzipAccepted)
            #expect(head.headers[.contentEncoding] == nil)

            // The script too (it is over 1 KiB); a small body is sent as it is (CompressionRules).
            let js = try await client.get("/static/portal.js", headers: gzipAccepted)
            #expect(js.status == .ok)
            #expect(js.headers[.contentEncoding] == "gzip")
        }
    }

    @Test func a_token_from_a_gzipped_page_signs_in_after_another_page_was_shown() async throws {
        try await withPortal { _, client in
            let agent = Agent()
            let a = try await client.get(AuthRequest().uri, agent)
            let loginURI = try #require(a.location)
            // The first from a gzipped page, the second from a plain one.
            let zipped = try await client.get(loginURI, agent, headers: gzipAccepted)
            #expect(zipped.headers[.contentEncoding] == "gzip")
            let page = String(decoding: try #require(gunzip(zipped.body)), as: UTF8.self)
            let marker = try #require(page.range(of: #"name="csrf" value=""#))
            let first = String(page[marker.upperBound...].prefix { $0 != "\"" })
            let second = try #require(try await client.get(loginURI, agent).hiddenInput("csrf"))
            #expect(first != second)
            let r = try await client.postForm("/login", [("csrf", first), ("req", String(loginURI.dropFirst("/login?req=".count))),
                                                         ("username", Fixture.username), ("password", Fixture.password)], agent)
            #expect(r.status == .seeOther)
        }
    }
}

/// The middleware on its own, behind routes that answer each case.
@Suite struct CompressionRules {
    static let big = String(repeating: "<p>Hello, compressible world.</p>\n", count: 100)

    static func page(_ headers: HTTPFields, _ text: String = big) -> Response {
        Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func withRouter(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        // HEAD as Hummingbird makes it from GET: the GET response with its body dropped.
        let router = Router(context: PortalContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: CompressOnly())
        router.get("/html") { _, _ in Self.page([.contentType: "text/html; charset=utf-8"]) }
        router.get("/no-store") { _, _ in Self.page([.contentType: "application/json", .cacheControl: "private, No-Store"]) }
        router.get("/no-store-page") { _, _ in Self.page([.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]) }
        router.get("/secret") { _, _ in Responses.html(.ok, Self.big, secret: true) }
        router.get("/small") { _, _ in Self.page([.contentType: "text/html"], "<p>short</p>") }
        router.get("/png") { _, _ in Self.page([.contentType: "image/png"]) }
        router.get("/encoded") { _, _ in Self.page([.contentType: "text/html", .contentEncoding: "br"]) }
        router.get("/vary") { _, _ in Self.page([.contentType: "application/json", .vary: "Cookie"]) }
        router.get("/stream") { _, _ in
            // No declared length: streamed, passed through.
            Response(status: .ok, headers: [.contentType: "text/html"], body: .init { writer in
                try await writer.write(ByteBuffer(string: Self.big))
                try await writer.finish(nil)
            })
        }
        router.get("/huge") { _, _ in
            Self.page([.contentType: "text/html"], String(repeating: "x", count: Compression.maximumSize + 1))
        }
        let app = Application(router: router, logger: testLogger())
        try await app.test(.router) { client in try await body(client) }
    }

    @Test func only_eligible_responses_are_gzipped() async throws {
        try await withRouter { client in
            let html = try await client.execute(uri: "/html", method: .get, headers: gzipAccepted)
            #expect(html.headers[.contentEncoding] == "gzip")
            #expect(try #require(gunzip(html.body)) == Array(Self.big.utf8))
            #expect(html.headers[.contentLength] == String(html.body.readableBytes))

            for uri in ["/no-store", "/secret", "/small", "/png", "/stream", "/huge"] {
                let r = try await client.execute(uri: uri, method: .get, headers: gzipAccepted)
                #expect(r.headers[.contentEncoding] == nil, "\(uri)")
                #expect(r.headers[Responses.secretMarker] == nil, "\(uri): the marker never leaves")
            }
            // A no-store page is gzipped (its CSRF token is masked); a page marked secret is not.
            let page = try await client.execute(uri: "/no-store-page", method: .get, headers: gzipAccepted)
            #expect(page.headers[.contentEncoding] == "gzip")
            let secret = try await client.execute(uri: "/secret", method: .get, headers: gzipAccepted)
            #expect(secret.text == Self.big)
            let noStore = try await client.execute(uri: "/no-store", method: .get, headers: gzipAccepted)
            #expect(noStore.text == Self.big)
            #expect(noStore.headers[.vary] == nil)

            let encoded = try await client.execute(uri: "/encoded", method: .get, headers: gzipAccepted)
            #expect(encoded.headers[values: .contentEncoding] == ["br"])

            // HEAD: no body, no encoding, the identity length; Vary says the GET varies.
            let head = try await client.execute(uri: "/html", method: .head, headers: gzipAccepted)
            #expect(head.status == .ok)
            #expect(head.body.readableBytes == 0)
            #expect(head.headers[.contentEncoding] == nil)
            #expect(head.headers[.contentLength] == String(Self.big.utf8.count))
            #expect(head.headers[values: .vary] == ["Accept-Encoding"])

            let vary = try await client.execute(uri: "/vary", method: .get, headers: gzipAccepted)
            #expect(vary.headers[.contentEncoding] == "gzip")
            #expect(vary.headers[values: .vary] == ["Cookie", "Accept-Encoding"])
        }
    }
}

/// Only the portal's compression step, as `PortalMiddleware` applies it last.
struct CompressOnly: RouterMiddleware {
    typealias Context = PortalContext
    func handle(_ request: Request, context: PortalContext, next: (Request, PortalContext) async throws -> Response) async throws -> Response {
        try await Compression.apply(try await next(request, context), for: request)
    }
}
