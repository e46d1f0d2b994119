import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import IdP

/// Back-channel logout over HTTP(S) with Foundation's URLSession (libcurl on Linux): a form POST,
/// no redirects followed (§2.5: the RP answers itself), a bounded timeout.
struct URLSessionLogoutTransport: LogoutTransport {
    private let session: URLSession

    init() {
        let c = URLSessionConfiguration.ephemeral
        c.httpShouldSetCookies = false
        c.httpCookieAcceptPolicy = .never
        c.urlCache = nil
        session = URLSession(configuration: c, delegate: NoRedirects(), delegateQueue: nil)
    }

    func post(_ url: String, form: String, timeout: TimeInterval) async throws -> Int {
        guard let u = URL(string: url) else { throw URLError(.badURL) }
        var r = URLRequest(url: u, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        r.httpMethod = "POST"
        r.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        r.setValue("no-store", forHTTPHeaderField: "Cache-Control")
        r.httpBody = Data(form.utf8)
        // The delegate on the task itself: swift-corelibs-foundation asks only a task's own delegate
        // about redirects (a session delegate is not consulted for async tasks), and a logout token
        // must never be re-sent wherever a 307 points.
        let (_, response) = try await session.data(for: r, delegate: NoRedirects())
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }

    private final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }
}
