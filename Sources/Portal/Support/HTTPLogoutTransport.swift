import AsyncHTTPClient
import Foundation
import IdP
import NIOCore
import NIOHTTP1

/// Back-channel logout over HTTP(S) with AsyncHTTPClient (SwiftNIO and BoringSSL, already in the
/// server): a form POST, no redirects followed (§2.5: the RP answers itself; a logout token must
/// never be re-sent wherever a 307 points), no cookies, a bounded timeout. Not URLSession: on Linux
/// that is FoundationNetworking over libcurl, which loaded eleven more libraries into every
/// portal process (≈ 3 MB of idle RSS) for this one request.
struct HTTPLogoutTransport: LogoutTransport {
    /// One client for the process (never shut down, so never deinitialised while in use).
    static let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                   configuration: .init(redirectConfiguration: .disallow, decompression: .disabled))

    func post(_ url: String, form: String, timeout: TimeInterval) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Cache-Control", value: "no-store")
        request.body = .bytes(ByteBuffer(string: form))
        let response = try await Self.client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        // The answer's status is all that counts; the body is read (to free the connection), not kept.
        _ = try? await response.body.collect(upTo: 64 * 1024)
        return Int(response.status.code)
    }
}
