import Foundation
import Hummingbird
import HTTPTypes
import IdP
import Logging
import Templates

/// The one middleware: gives every request an id, logs one line per request (path only: query
/// strings can carry codes), counts and times it per route (`RequestMetrics`), adds security
/// headers, turns stray errors into a friendly page or OAuth JSON, and gzips what may be gzipped
/// (`Compression`, last, so it sees every header set here). One layer rather than three: each
/// async middleware layer cost a frame, closures and retains on every request (docs/performance.md).
struct PortalMiddleware: RouterMiddleware {
    typealias Context = PortalContext
    let pages: Pages
    let hsts: Bool
    /// Proxies whose `X-Forwarded-For` / `Forwarded` is believed (`server.trusted_proxies`).
    let trustedProxies: CIDRSet
    var forwardedHeader: ClientAddress.Header = .xForwardedFor
    let metrics = RequestMetrics()

    func handle(_ request: Request, context: PortalContext, next: (Request, PortalContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let inFlight = metrics.inFlight(request.method)
        inFlight.increment()
        defer { inFlight.decrement() }
        var context = context
        if !trustedProxies.isEmpty {
            let peer = context.peerAddress
            let client = ClientAddress.resolve(peer: peer, headers: request.headers, trusted: trustedProxies, header: forwardedHeader)
            if client != peer { context.forwardedFor = client }
        }
        var response: Response
        do {
            // A query string that is not clean form encoding (bad escapes, invalid UTF-8, control
            // characters such as %00) is refused here, before any route reads it.
            if let q = request.uri.query, !q.isEmpty, FormParameters.parse(q) == nil {
                response = malformedQuery(request, context)
            } else {
                response = try await next(request, context)
                metrics.record(route: context.endpointPath ?? "Unknown", method: request.method, status: Int(response.status.code),
                               nanoseconds: Int64((ContinuousClock.now - start) / .nanoseconds(1)))
            }
        } catch {
            response = errorResponse(error, request: request, context: context)
            metrics.record(route: context.endpointPath ?? "NotFound", method: request.method, status: Int(response.status.code), nanoseconds: nil)
        }
        response.headers.append(HTTPField(name: SecurityHeaders.requestID, value: context.requestID))
        SecurityHeaders.apply(&response.headers, hsts: hsts)
        response = try await Compression.apply(response, for: request)
        context.logger.info("request", metadata: [
            "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "status": .stringConvertible(response.status.code),
            "ms": .string(String(format: "%.2f", Double((ContinuousClock.now - start) / .microseconds(1)) / 1000)),
            "remote": .string(context.remoteAddress),
        ])
        return response
    }

    func malformedQuery(_ request: Request, _ context: PortalContext) -> Response {
        if Self.isProtocolPath(request.uri.path) {
            return Responses.oauthError(.invalidRequest("the query string is malformed (bad percent-encoding, invalid UTF-8 or a control character)"))
        }
        return Responses.html(.badRequest, pages.render(ErrorView(heading: "This link is malformed",
                                                                  message: "Part of the address is not valid: it holds a character no link may hold. Go back to where the link came from and start again.",
                                                                  requestID: context.requestID)))
    }

    static func isProtocolPath(_ path: String) -> Bool {
        path == "/token" || path == "/userinfo" || path == "/revoke" || path == "/introspect" || path == "/device/code" || path.hasPrefix("/.well-known") || path == "/keys" || path.hasPrefix("/webhook/")
    }

    func errorResponse(_ error: any Error, request: Request, context: PortalContext) -> Response {
        // The database is down (or did not give a connection in time): a clear 503, never a 500.
        if let e = error as? StorageError, e.isUnavailable {
            context.logger.error("database unavailable", metadata: ["error": .string(e.message)])
            if Self.isProtocolPath(request.uri.path) {
                return Responses.oauthError(.temporarilyUnavailable("the database cannot be reached; try again"))
            }
            return Responses.html(.serviceUnavailable, pages.render(ErrorView(heading: "Sign-in is unavailable",
                                                                              message: "The portal's database cannot be reached right now. Nothing was changed.",
                                                                              hint: "Try again in a minute. If it persists, tell your administrator.",
                                                                              requestID: context.requestID)))
        }
        let status: HTTPResponse.Status
        if let e = error as? any HTTPResponseError { status = e.status } else { status = .internalServerError }
        if status == .internalServerError {
            context.logger.error("unhandled error", metadata: ["error": .string(String(describing: error))])
        }
        let path = request.uri.path
        if Self.isProtocolPath(path) {
            let e: OAuthError = status == .contentTooLarge ? .tooLarge("request body too large")
                : status.code < 500 ? OAuthError("invalid_request", status.reasonPhrase, status: status.code)
                : .serverError("internal error")
            return Responses.oauthError(e)
        }
        let message = status == .notFound ? "There is no page at this address." :
            status.code < 500 ? "The request could not be understood." : "Something went wrong on our side. Please try again."
        return Responses.html(status, pages.render(ErrorView(heading: status == .notFound ? "Page not found" : "Something went wrong",
                                                             message: message, requestID: context.requestID)))
    }
}

enum SecurityHeaders {
    /// CSP without 'unsafe-inline'. No form-action: after the login form the browser is
    /// redirected to the client, and Chromium applies form-action to that redirect too.
    static let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let openerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
    static let requestID = HTTPField.Name("X-Request-Id")!
    // Built once: every response carries them.
    static let always = [HTTPField(name: .xContentTypeOptions, value: "nosniff"), HTTPField(name: referrerPolicy, value: "no-referrer"),
                         HTTPField(name: frameOptions, value: "DENY"), HTTPField(name: openerPolicy, value: "same-origin")]
    static let cspField = HTTPField(name: .contentSecurityPolicy, value: csp)
    static let noStore = HTTPField(name: .cacheControl, value: "no-store")
    static let hstsField = HTTPField(name: .strictTransportSecurity, value: "max-age=31536000")

    static func apply(_ h: inout HTTPFields, hsts: Bool) {
        var hasCSP = false, hasCacheControl = false
        for f in h {
            if f.name == .contentSecurityPolicy { hasCSP = true } else if f.name == .cacheControl { hasCacheControl = true }
        }
        if !hasCSP { h.append(cspField) }
        h.append(contentsOf: always)
        if !hasCacheControl { h.append(noStore) }
        if hsts { h.append(hstsField) }
    }
}
