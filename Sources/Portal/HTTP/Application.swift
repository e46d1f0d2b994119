import Foundation
import Hummingbird
import HummingbirdTLS
import HummingbirdCore
import IdP
import Logging
import NIOCore
import NIOSSL
import Prometheus
import CoreMetrics
import ServiceLifecycle
import Templates

/// The one way to build the HTTP application: `portal serve` and the tests both call it.
func buildRouter(runtime: Runtime, pages: Pages, assets: StaticAssets) -> Router<PortalContext> {
    let router = Router(context: PortalContext.self)
    // The one middleware: ids, logs, metrics (hb_requests, http_server_request_duration), security
    // headers, error pages, gzip (Compression.swift says what and why not no-store).
    router.add(middleware: PortalMiddleware(pages: pages, hsts: runtime.config.tls != nil || runtime.config.issuer.hasPrefix("https://"),
                                            trustedProxies: runtime.config.trustedProxies, forwardedHeader: runtime.config.forwardedHeader))
    let browser = Browser(secure: runtime.config.secureCookies, key: runtime.browserKey, sessionTTL: runtime.config.tokens.sessionTTL)
    ProtocolRoutes(runtime: runtime).register(router)
    let browserRoutes = BrowserRoutes(runtime: runtime, pages: pages, browser: browser)
    browserRoutes.register(router)
    KubernetesRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    CredentialRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    let admin = AdminRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) })
    admin.register(router)
    ShownRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    SessionRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    FactorRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    DeviceRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)
    DeviceGrantRoutes(runtime: runtime, pages: pages, browser: browser, session: { try await browserRoutes.currentSession($0) }).register(router)

    router.get("/healthz") { _, _ in Responses.json(.ok, #"{"status":"ok"}"#) }
    router.get("/readyz") { _, context in
        // Answers within a second and names what is down. The database and a signing key are
        // required (503 without them); the directory is reported but does not take the replica
        // out of rotation: local accounts, robots and refreshes of local users still work.
        let database = await runtime.storage.isReachable(within: .milliseconds(800))
        let signing = (try? runtime.keys.signingKey()) != nil
        let directory = runtime.directory.map { $0.directoryReachable ? "ok" : "unavailable" } ?? "not configured"
        var checks = JSONObjectWriter()
        checks.add("database", database ? "ok" : "unavailable")
        checks.add("signing_key", signing ? "ok" : "none active")
        checks.add("directory", directory)
        var w = JSONObjectWriter()
        w.add("status", database && signing ? "ready" : "unavailable")
        w.addRaw("checks", checks.string)
        if !(database && signing) {
            context.logger.warning("not ready", metadata: ["database": .string(database ? "ok" : "unavailable"), "signing_key": .stringConvertible(signing)])
        }
        return Responses.json(database && signing ? .ok : .serviceUnavailable, w.string)
    }
    let metricsToken = runtime.config.metricsBearerTokenFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
        .trimmingCharacters(in: .whitespacesAndNewlines)
    let metricsPublic = runtime.config.metricsPublic
    router.get("/metrics") { request, context in
        // With a token file: the bearer token, from anywhere. Without: loopback peers only, unless metrics.public.
        if let metricsToken {
            let sent = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            guard Secrets.constantTimeEqual(sent, metricsToken) else {
                return Responses.json(.unauthorized, #"{"error":"unauthorized","error_description":"send the metrics bearer token (metrics.bearer_token_file)"}"#,
                                      extra: [.wwwAuthenticate: #"Bearer realm="metrics""#])
            }
        } else if !metricsPublic && !(context.peer.map { isLoopback($0) } ?? false) {
            return Responses.json(.forbidden, #"{"error":"forbidden","error_description":"metrics are served to loopback only; set metrics.bearer_token_file (or metrics.public: true)"}"#)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: PortalMetricsRegistry.shared.emitToBuffer())))
    }
    router.get("/static/{file}") { _, context in
        guard let name = context.parameters.get("file"), let asset = assets.files[name] else { throw HTTPError(.notFound) }
        return Response(status: .ok, headers: [.contentType: asset.type, .cacheControl: "public, max-age=3600"],
                        body: .init(byteBuffer: ByteBuffer(bytes: asset.data)))
    }
    return router
}

func buildApplication(runtime: Runtime) throws -> Application<Router<PortalContext>.Responder> {
    let pages = try Pages.load()
    let assets = StaticAssets.load(configured: runtime.config.publicDir, logger: runtime.logger)
    let router = buildRouter(runtime: runtime, pages: pages, assets: assets)
    let c = runtime.config
    let services: [any Service] = [KeyMaintenanceService(runtime: runtime, interval: .seconds(Int(c.keyCheckInterval))), GarbageCollectionService(runtime: runtime),
                                   CredentialUsageFlushService(runtime: runtime), BackchannelLogoutService(runtime: runtime)]
    let configuration = ApplicationConfiguration(address: .hostname(c.listenHost, port: c.listenPort), serverName: nil)
    let limits = SlowClientGuard.Limits(header: .milliseconds(Int64(c.headerTimeout * 1000)), body: .milliseconds(Int64(c.bodyTimeout * 1000)),
                                        idle: .milliseconds(Int64(c.idleTimeout * 1000)))
    // No Hummingbird idleTimeout beside the guard: the guard already drops a connection idle past
    // its limits, and NIO's IdleStateHandler hangs a promise and a callback on every write.
    var server: HTTPServerBuilder = .http1(configuration: .init(additionalChannelHandlers: [SlowClientGuard(limits: limits)], idleTimeout: nil))
    if let tls = c.tls {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.keyFile, format: .pem)
        var tlsConfig = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tlsConfig.minimumTLSVersion = .tlsv12
        server = try .tls(server, tlsConfiguration: tlsConfig)
    }
    return Application(router: router, server: server, configuration: configuration, services: services, logger: runtime.logger)
}

func isLoopback(_ address: SocketAddress) -> Bool {
    guard let ip = address.ipAddress else { return false }
    return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
}

/// The Prometheus registry behind `/metrics`; `portal serve` bootstraps swift-metrics with it.
enum PortalMetricsRegistry {
    static let shared = PrometheusCollectorRegistry()

    static func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: shared))
    }
}
