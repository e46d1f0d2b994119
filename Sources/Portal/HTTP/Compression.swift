import CZlib
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Gzips pages, CSS, script, JSON, YAML and SVG for clients that accept gzip.
///
/// Never compressed: a response that holds a secret. BREACH: a compressed body's length leaks
/// how well a secret compresses against text next to it, and an attacker who can put text in the
/// page (a reflected parameter, a form value) and watch the sizes on the wire recovers the secret
/// byte by byte. So:
/// - no-store responses that are not HTML (the token endpoint and its errors, kubeconfig
///   downloads, userinfo) go out as they are;
/// - HTML pages that show a one-time secret (`/shown/…`, the setup page with its token) are
///   marked with `Responses.secretMarker`, which this middleware removes and honours;
/// - every other page is compressed: its only secret is the CSRF token, masked afresh for every
///   response (`Browser.csrfToken`), so there is nothing stable to guess.
///
/// Applied last by `PortalMiddleware`, so it sees every header set before it (the default
/// `no-store` included) and the error pages rendered there.
enum Compression {
    /// Smaller bodies gain nothing worth the CPU and the gzip header.
    static let minimumSize = 1024
    /// Bodies are collected to be compressed in one call; larger (or streamed) ones pass through.
    static let maximumSize = 4 << 20
    static let types: [String] = [
        "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
        "application/jwk-set+json", "application/yaml", "image/svg+xml",
    ]

    static func apply(_ response: Response, for request: Request) async throws -> Response {
        var response = response
        // Only a response that carries the marker is changed (setting nil would still copy the fields).
        if response.headers.contains(where: { $0.name == Responses.secretMarker }) {
            response.headers[Responses.secretMarker] = nil
            return response
        }
        guard compressible(response) else { return response }
        // From here the bytes sent depend on Accept-Encoding, whether or not this client gets gzip.
        addVary(&response.headers)
        // HEAD: the body is already gone; the headers describe the identity body (its length).
        guard request.method != .head, acceptsGzip(request.headers[values: .acceptEncoding]),
              let length = response.body.contentLength, length >= minimumSize, length <= maximumSize
        else { return response }

        let sink = CollectedBody()
        try await response.body.write(CollectingWriter(sink: sink, limit: maximumSize))
        guard let gzipped = Gzip.compress(sink.buffer), gzipped.readableBytes < sink.buffer.readableBytes else {
            response.body = body(sink.buffer, trailers: sink.trailers)
            return response
        }
        response.headers[.contentEncoding] = "gzip"
        response.body = body(gzipped, trailers: sink.trailers)
        response.headers[.contentLength] = String(gzipped.readableBytes)
        return response
    }

    static func body(_ buffer: ByteBuffer, trailers: HTTPFields?) -> ResponseBody {
        guard let trailers else { return ResponseBody(byteBuffer: buffer) }
        return ResponseBody(contentLength: buffer.readableBytes) { writer in
            try await writer.write(buffer)
            try await writer.finish(trailers)
        }
    }

    /// Compressible by its headers: a text type, no encoding yet, a body that may exist, HTML or not `no-store`.
    static func compressible(_ response: Response) -> Bool {
        guard response.status != .noContent, response.status != .notModified, response.status.code >= 200 else { return false }
        // One pass over the fields, no arrays (this runs on every response; HTTPFields' subscript joins values).
        var contentType: String?, noStore = false
        for field in response.headers {
            switch field.name {
            case .contentEncoding: return false
            case .contentType: if contentType == nil { contentType = field.value }
            case .cacheControl: noStore = noStore || lists(field.value, "no-store")
            default: continue
            }
        }
        guard let contentType else { return false }
        let semicolon = contentType.utf8.firstIndex(of: UInt8(ascii: ";")) ?? contentType.endIndex
        let type = trimmed(contentType[..<semicolon])
        if same(type, "text/html") { return true }
        return !noStore && types.contains { same(type, $0) }
    }

    /// Whether `s` is `lowercase` ignoring ASCII case — no String made (this runs on every response).
    static func same(_ s: Substring, _ lowercase: String) -> Bool {
        let a = s.utf8, b = lowercase.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in (x >= 0x41 && x <= 0x5A ? x | 0x20 : x) == y }
    }

    /// Whether a comma-separated header value names `directive` (before any `=`; case and
    /// surrounding whitespace ignored), without splitting it into arrays.
    static func lists(_ value: String, _ directive: String) -> Bool {
        let u = value.utf8
        var start = u.startIndex
        while true {
            let end = u[start...].firstIndex(of: UInt8(ascii: ",")) ?? u.endIndex
            let name = u[start..<end].firstIndex(of: UInt8(ascii: "=")) ?? end
            if same(trimmed(value[start..<name]), directive) { return true }
            guard end < u.endIndex else { return false }
            start = u.index(after: end)
        }
    }

    /// Accept-Encoding (RFC 9110 §12.5.3): gzip (or x-gzip) with a q-value above zero, or else
    /// `*` with one. An absent header, an empty one or `identity` alone get no gzip; a gzip entry
    /// with q=0 refuses it even when `*` is accepted, and a malformed q-value counts as 0.
    static func acceptsGzip(_ values: [String]) -> Bool {
        var gzip: Double?, any: Double?
        for value in values {
            for element in value.split(separator: ",") {
                let parts = element.split(separator: ";")
                guard let coding = parts.first.map(token), !coding.isEmpty else { continue }
                var q = 1.0
                for parameter in parts.dropFirst() {
                    let kv = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    if token(kv[0]) == "q" {
                        q = kv.count == 2 ? qValue(String(trimmed(kv[1]))) ?? 0 : 0
                    }
                }
                if coding == "gzip" || coding == "x-gzip" { gzip = min(gzip ?? q, q) } else if coding == "*" { any = min(any ?? q, q) }
            }
        }
        if let gzip { return gzip > 0 }
        return (any ?? 0) > 0
    }

    /// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    static func qValue(_ s: String) -> Double? {
        guard (1...5).contains(s.utf8.count), s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }),
              let q = Double(s), (0...1).contains(q) else { return nil }
        return q
    }

    /// Optional whitespace (spaces and tabs, RFC 9110 §5.6.3) trimmed off both ends, without
    /// Foundation: this runs on every response (Foundation's trimming was ≈ 4 % of a small request).
    static func trimmed(_ s: Substring) -> Substring {
        let u = s.utf8
        var a = u.startIndex, b = u.endIndex
        while a < b, u[a] == 0x20 || u[a] == 0x09 { a = u.index(after: a) }
        while a < b {
            let p = u.index(before: b)
            guard u[p] == 0x20 || u[p] == 0x09 else { break }
            b = p
        }
        return s[a..<b]
    }

    /// A header token, trimmed and lowercased for comparison.
    static func token(_ s: Substring) -> String { String(trimmed(s)).lowercased() }

    static func addVary(_ headers: inout HTTPFields) {
        let present = headers.contains { $0.name == .vary && (lists($0.value, "accept-encoding") || lists($0.value, "*")) }
        if !present { headers.append(HTTPField(name: .vary, value: "Accept-Encoding")) }
    }
}

/// gzip (RFC 1952) in one call through zlib.
enum Gzip {
    /// The gzip form of `input` at level 6, or nil if zlib fails (the caller sends it as it is).
    static func compress(_ input: ByteBuffer, level: Int32 = 6) -> ByteBuffer? {
        var stream = z_stream()
        guard czlib_gzip_init(&stream, level) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        // With this much room one deflate(Z_FINISH) ends the stream (zlib.h, deflateBound).
        let bound = Int(deflateBound(&stream, uLong(input.readableBytes)))
        var output = ByteBufferAllocator().buffer(capacity: bound)
        var finished = false
        input.withUnsafeReadableBytes { source in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { target in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(target.count)
                finished = deflate(&stream, Z_FINISH) == Z_STREAM_END
                return finished ? target.count - Int(stream.avail_out) : 0
            }
        }
        return finished ? output : nil
    }
}

/// Where `CollectingWriter` leaves the body it was given.
private final class CollectedBody {
    var buffer = ByteBuffer()
    var trailers: HTTPFields?
}

private struct CollectingWriter: ResponseBodyWriter {
    struct TooLarge: Error {}
    let sink: CollectedBody
    let limit: Int

    mutating func write(_ buffer: ByteBuffer) async throws {
        // The declared length was within the limit; a body that writes more is refused, not buffered.
        guard sink.buffer.readableBytes + buffer.readableBytes <= limit else { throw TooLarge() }
        var buffer = buffer
        sink.buffer.writeBuffer(&buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        sink.trailers = trailingHeaders
    }
}
