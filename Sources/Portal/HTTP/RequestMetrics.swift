import CoreMetrics
import Foundation
import HTTPTypes

/// Request counts and latency per route: the series Hummingbird's MetricsMiddleware reports
/// (`hb_requests`, `http_server_request_duration`, `hb_request_errors`,
/// `http_server_active_requests`, same labels), recorded by `PortalMiddleware` itself — one async
/// middleware layer fewer on every request, and no closure wrapped around every response body.
/// The duration ends when the handler has produced the response (the body of a page or a JSON
/// answer is already in memory then).
final class RequestMetrics: @unchecked Sendable {
    struct Key: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: Int
    }

    struct Series {
        let requests: Counter
        let duration: CoreMetrics.Timer
        let errors: Counter
    }

    private let lock = NSLock()
    private var series: [Key: Series] = [:]
    private var active: [HTTPRequest.Method: Meter] = [:]

    /// The in-flight gauge of `method`.
    func inFlight(_ method: HTTPRequest.Method) -> Meter {
        lock.withLock {
            if let m = active[method] { return m }
            let m = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)])
            active[method] = m
            return m
        }
    }

    /// A finished request: counted, and timed unless it ended in an error thrown by its handler.
    func record(route: String, method: HTTPRequest.Method, status: Int, nanoseconds: Int64?) {
        let s = lock.withLock {
            let key = Key(route: route, method: method, status: status)
            if let s = series[key] { return s }
            let dimensions = [("http.route", route), ("http.request.method", method.description), ("http.response.status_code", String(status))]
            let s = Series(requests: Counter(label: "hb.requests", dimensions: dimensions),
                           duration: CoreMetrics.Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds),
                           errors: Counter(label: "hb.request.errors", dimensions: dimensions))
            series[key] = s
            return s
        }
        s.requests.increment()
        if let nanoseconds { s.duration.recordNanoseconds(nanoseconds) } else { s.errors.increment() }
    }
}
