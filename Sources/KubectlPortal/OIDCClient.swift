import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP client per run (AsyncHTTPClient: TLS from BoringSSL, system trust roots, or the
/// portal's CA with --certificate-authority), shut down when the command ends.
enum HTTP {
    nonisolated(unsafe) static var client: HTTPClient?

    static func shared(caFile: String?) throws -> HTTPClient {
        if let c = client { return c }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else { throw PluginError("cannot read the certificate authority file \(caFile)") }
            tls.trustRoots = .file(caFile)
        }
        var config = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        config.timeout = .init(connect: .seconds(10), read: .seconds(30))
        let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        client = c
        return c
    }

    static func shutdown() async { try? await client?.shutdown(); client = nil }
}

/// The portal seen from the plugin: discovery, the token endpoint (refresh, code, device code),
/// the device authorization endpoint and revocation. Tokens travel only in request bodies.
struct OIDCClient {
    let issuer: String
    let clientID: String
    var caFile: String? = nil

    struct Endpoints { var authorization, token: String; var device, revocation: String? }

    func endpoints() async throws -> Endpoints {
        let (status, o) = try await get(issuer + "/.well-known/openid-configuration")
        guard status == 200, let authorization = o["authorization_endpoint"] as? String, let token = o["token_endpoint"] as? String else {
            throw PluginError("\(issuer) is not an OpenID provider (its discovery document answered \(status)); check --issuer")
        }
        return Endpoints(authorization: authorization, token: token, device: o["device_authorization_endpoint"] as? String,
                         revocation: o["revocation_endpoint"] as? String)
    }

    func get(_ url: String) async throws -> (Int, [String: Any]) {
        try await send(HTTPClientRequest(url: url))
    }

    func post(_ url: String, _ fields: [(String, String)]) async throws -> (Int, [String: Any]) {
        var r = HTTPClientRequest(url: url)
        r.method = .POST
        r.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        r.body = .bytes(ByteBuffer(string: fields.map { Self.escape($0.0) + "=" + Self.escape($0.1) }.joined(separator: "&")))
        return try await send(r)
    }

    func send(_ request: HTTPClientRequest) async throws -> (Int, [String: Any]) {
        var r = request
        r.headers.add(name: "User-Agent", value: "kubectl-portal/\(Plugin.version) (\(Plugin.platform))")
        r.headers.add(name: "Accept", value: "application/json")
        let client = try HTTP.shared(caFile: caFile)
        do {
            let response = try await client.execute(r, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            let o = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:]
            return (Int(response.status.code), o)
        } catch let e as PluginError { throw e } catch {
            throw PluginError("cannot reach \(issuer): \(error)")
        }
    }

    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// The tokens of a successful token response, for the cache.
    func tokens(_ o: [String: Any]) throws -> CachedTokens {
        guard let id = o["id_token"] as? String, let refresh = o["refresh_token"] as? String, let exp = Self.claims(id)["exp"] as? Double else {
            throw PluginError("the portal's answer carried no id_token and refresh_token")
        }
        let refreshIn = (o["refresh_expires_in"] as? Double) ?? 0
        return CachedTokens(issuer: issuer, clientID: clientID, idToken: id, refreshToken: refresh, expiry: exp,
                            refreshExpiry: refreshIn > 0 ? Date().timeIntervalSince1970 + refreshIn : 0)
    }

    /// The claims of a JWT, unverified: the plugin only reads when it expires and whom it names
    /// (kube-apiserver verifies it).
    static func claims(_ jwt: String) -> [String: Any] {
        let parts = jwt.split(separator: ".")
        guard parts.count == 3 else { return [:] }
        var b = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard let d = Data(base64Encoded: b) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: d) as? [String: Any]) ?? [:]
    }

    enum Refresh { case ok(CachedTokens), ended(String) }

    func refresh(_ t: CachedTokens, endpoints: Endpoints) async throws -> Refresh {
        let (status, o) = try await post(endpoints.token, [("grant_type", "refresh_token"), ("refresh_token", t.refreshToken), ("client_id", clientID)])
        if status == 200 { return .ok(try tokens(o)) }
        if o["error"] as? String == "invalid_grant" { return .ended(o["error_description"] as? String ?? "the session has ended") }
        throw PluginError("the portal refused the refresh (\(status) \(o["error"] as? String ?? ""): \(o["error_description"] as? String ?? "")); try again")
    }

    // MARK: Device authorization grant (RFC 8628)

    func deviceLogin(_ endpoints: Endpoints) async throws -> CachedTokens {
        guard let device = endpoints.device else { throw PluginError("\(issuer) does not offer sign-in from another device; run without --device") }
        let (status, o) = try await post(device, [("client_id", clientID), ("scope", "openid profile email groups offline_access")])
        guard status == 200, let deviceCode = o["device_code"] as? String, let userCode = o["user_code"] as? String,
              let uri = o["verification_uri"] as? String else {
            throw PluginError("the portal refused to start a device sign-in (\(o["error"] as? String ?? String(status)): \(o["error_description"] as? String ?? ""))")
        }
        var interval = (o["interval"] as? Int) ?? 5
        let deadline = Date().addingTimeInterval(TimeInterval((o["expires_in"] as? Int) ?? 600))
        Plugin.say("To sign in, open \(uri) in a browser where you can sign in, and enter the code \(userCode)")
        if let complete = o["verification_uri_complete"] as? String { Plugin.say("(or open \(complete))") }
        Plugin.say("Enter it only if you started this sign-in yourself. Waiting…")
        while Date() < deadline {
            try await Task.sleep(for: .seconds(interval))
            let (s, r) = try await post(endpoints.token, [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                                                        ("device_code", deviceCode), ("client_id", clientID)])
            if s == 200 { return try tokens(r) }
            switch r["error"] as? String {
            case "authorization_pending": continue
            case "slow_down": interval += 5
            case "access_denied": throw PluginError("the sign-in was denied at \(uri); run kubectl portal login to start again")
            case "expired_token": throw PluginError("the code expired before it was approved; run kubectl portal login to start again")
            default: throw PluginError("the device sign-in failed (\(r["error"] as? String ?? String(s)): \(r["error_description"] as? String ?? ""))")
            }
        }
        throw PluginError("the code expired before it was approved; run kubectl portal login to start again")
    }

    // MARK: Browser with a loopback redirect (RFC 8252) and PKCE (RFC 7636)

    func browserLogin(_ endpoints: Endpoints, open: (String) -> Bool) async throws -> CachedTokens? {
        guard let listener = Loopback.listen(ports: [8000, 18000]) else { return nil }
        defer { close(listener.fd) }
        let redirect = "http://localhost:\(listener.port)"
        let verifier = Plugin.randomToken()
        let challenge = Data(SHA256.hash(data: Data(verifier.utf8))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let state = Plugin.randomToken()
        let query = [("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirect), ("scope", "openid profile email groups offline_access"),
                     ("state", state), ("code_challenge", challenge), ("code_challenge_method", "S256")]
        let url = endpoints.authorization + "?" + query.map { Self.escape($0.0) + "=" + Self.escape($0.1) }.joined(separator: "&")
        guard open(url) else { return nil }
        Plugin.say("Opened a browser to sign in. If none appeared, open: \(url)")
        let params = try await Loopback.awaitRedirect(listener, timeout: 300)
        guard params["state"] == state else { throw PluginError("the sign-in answer did not match this sign-in (state); run kubectl portal login again") }
        if let e = params["error"] { throw PluginError("the sign-in was refused: \(e) \(params["error_description"] ?? "")") }
        guard let code = params["code"] else { throw PluginError("the browser came back without a code; run kubectl portal login again") }
        let (s, r) = try await post(endpoints.token, [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect),
                                                    ("code_verifier", verifier), ("client_id", clientID)])
        guard s == 200 else { throw PluginError("the portal refused the sign-in (\(r["error"] as? String ?? String(s)): \(r["error_description"] as? String ?? ""))") }
        return try tokens(r)
    }

    func revoke(_ t: CachedTokens, endpoints: Endpoints) async throws {
        guard let revocation = endpoints.revocation else { return }
        let (s, r) = try await post(revocation, [("token", t.refreshToken), ("token_type_hint", "refresh_token"), ("client_id", clientID)])
        guard s == 200 else { throw PluginError("the portal did not revoke the session (\(r["error"] as? String ?? String(s))); try again") }
    }
}

/// A one-shot HTTP listener on the loopback interface for the authorization redirect.
enum Loopback {
    struct Listener { let fd: Int32; let port: Int }

    static func listen(ports: [Int]) -> Listener? {
        for port in ports {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if bound == 0, Glibc.listen(fd, 4) == 0 { return Listener(fd: fd, port: port) }
            close(fd)
        }
        return nil
    }

    /// Waits for the browser's GET /?code=…&state=…, answers it with a page that says what happened.
    static func awaitRedirect(_ l: Listener, timeout: TimeInterval) async throws -> [String: String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: l.fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) <= 0 { try await Task.sleep(for: .milliseconds(10)); continue }
            let c = accept(l.fd, nil, nil)
            guard c >= 0 else { continue }
            defer { close(c) }
            var buf = [UInt8](repeating: 0, count: 8192)
            let n = recv(c, &buf, buf.count, 0)
            guard n > 0, let text = String(bytes: buf[0..<n], encoding: .utf8), let line = text.split(separator: "\r\n").first else { continue }
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0] == "GET", let comps = URLComponents(string: "http://localhost" + parts[1]),
                  comps.path == "/" || comps.path.isEmpty, let items = comps.queryItems, !items.isEmpty else {
                let notFound = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                _ = notFound.withCString { send(c, $0, strlen($0), 0) }
                continue
            }
            var params: [String: String] = [:]
            for i in items { params[i.name] = i.value ?? "" }
            let body = params["code"] != nil ? "<!doctype html><title>Signed in</title><p>Signed in. You can close this tab and go back to your terminal.</p>"
                : "<!doctype html><title>Not signed in</title><p>The sign-in did not complete. Go back to your terminal.</p>"
            let response = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
            _ = response.withCString { send(c, $0, strlen($0), 0) }
            return params
        }
        throw PluginError("no sign-in within \(Int(timeout)) seconds; run kubectl portal login again (or with --device)")
    }
}
