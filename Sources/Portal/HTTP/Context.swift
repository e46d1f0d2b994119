import Foundation
import Hummingbird
import HTTPTypes
import IdP
import Logging
import NIOCore

/// Per-request state: a request id (also in every log line and error page) and the peer address.
struct PortalContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let peer: SocketAddress?
    var requestID: String
    /// The client's address as reported by a trusted proxy (set by `PortalMiddleware`).
    var forwardedFor: String?

    /// The client's IP address: from a trusted proxy's `X-Forwarded-For`, else the peer's
    /// (formatted on use: most requests never need it).
    var remoteAddress: String { forwardedFor ?? peerAddress }
    var peerAddress: String { peer?.ipAddress ?? "unknown" }

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress
        // Hummingbird already tags the request's logger with `hb.request.id` (a random per-process
        // prefix and a counter): the same id goes on error pages and X-Request-Id, so a user's
        // report finds every log line of that request.
        requestID = source.logger[metadataKey: "hb.request.id"].map { "\($0)" } ?? UUID().uuidString
    }
}

extension Request {
    /// Cookie values by name (first occurrence wins).
    func cookie(_ name: String) -> String? {
        for header in headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == name { return String(kv[1]) }
            }
        }
        return nil
    }
}

enum Responses {
    /// A page, `no-store`. `secret`: it shows a one-time secret, so it is never gzipped (BREACH, see
    /// CompressionMiddleware, which removes the marker).
    static func html(_ status: HTTPResponse.Status, _ body: String, cookies: [String] = [], secret: Bool = false) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        if secret { headers[secretMarker] = "1" }
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// JSON; `noStore` for anything that carries a token or an error about one (RFC 6749 §5.1).
    static func json(_ status: HTTPResponse.Status, _ body: String, noStore: Bool = true, extra: HTTPFields = [:]) -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(16)  // room for what PortalMiddleware adds: one allocation per response
        headers.append(jsonType)
        if noStore { headers.append(contentsOf: noStoreFields) }
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static let jsonType = HTTPField(name: .contentType, value: "application/json")
    static let noStoreFields = [HTTPField(name: .cacheControl, value: "no-store"), HTTPField(name: .init("Pragma")!, value: "no-cache")]

    /// Internal: set on a response that shows a secret; never leaves the portal.
    static let secretMarker = HTTPField.Name("x-portal-holds-secret")!

    static func redirect(_ location: String, status: HTTPResponse.Status = .found, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: status, headers: headers)
    }

    static func oauthError(_ e: OAuthError, basicAuthUsed: Bool = false) -> Response {
        var extra: HTTPFields = [:]
        if e.code == "invalid_client" && basicAuthUsed { extra[.wwwAuthenticate] = #"Basic realm="portal""# }
        if e.status == 405 { extra[.allow] = "POST" }
        return json(HTTPResponse.Status(code: e.status), e.json, extra: extra)
    }
}
