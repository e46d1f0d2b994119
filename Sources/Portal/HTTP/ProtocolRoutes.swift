import CoreMetrics
import Foundation
import Hummingbird
import IdP

/// Discovery, JWKS, token and userinfo: JSON in, JSON out, OAuth error JSON on failure.
struct ProtocolRoutes {
    static let publicMinute: HTTPFields = [.cacheControl: "public, max-age=60"]
    static let publicFiveMinutes: HTTPFields = [.cacheControl: "public, max-age=300"]
    let runtime: Runtime
    var provider: Provider { runtime.provider }

    func register(_ router: Router<PortalContext>) {
        router.get("/.well-known/openid-configuration") { _, _ in await discovery() }
        router.get("/.well-known/oauth-authorization-server") { _, _ in await discovery() }
        router.get("/keys") { _, _ in
            Responses.json(.ok, runtime.keys.jwks(), noStore: false, extra: Self.publicMinute)
        }
        router.post("/token") { request, context in try await token(request, context) }
        router.on("/token", method: .get) { _, _ in Responses.oauthError(.methodNotAllowed("the token endpoint accepts POST only")) }
        router.post("/webhook/tokenreview") { request, context in try await tokenReview(request, context) }
        router.post("/revoke") { request, context in
            try await clientForm(request, context) { (form, basic) throws(OAuthError) in
                try await provider.revoke(form, authorizationHeader: basic, remoteAddress: context.remoteAddress)
                return Response(status: .ok, headers: [.cacheControl: "no-store", .contentLength: "0"])
            }
        }
        router.post("/device/code") { request, context in
            try await clientForm(request, context) { (form, basic) throws(OAuthError) in
                Responses.json(.ok, try await provider.deviceAuthorization(form, authorizationHeader: basic, remoteAddress: context.remoteAddress,
                                                                           userAgent: request.headers[.userAgent] ?? ""))
            }
        }
        router.post("/introspect") { request, context in
            try await clientForm(request, context) { (form, basic) throws(OAuthError) in
                Responses.json(.ok, try await provider.introspect(form, authorizationHeader: basic, remoteAddress: context.remoteAddress))
            }
        }
        for path in ["/revoke", "/introspect", "/device/code"] {
            router.on(RouterPath(path), method: .get) { _, _ in Responses.oauthError(.methodNotAllowed("this endpoint accepts POST only")) }
        }
        router.get("/userinfo") { request, _ in await userinfo(request, form: nil) }
        router.post("/userinfo") { request, _ in
            var request = request
            let form = try? await request.form(limit: runtime.config.maxBodyBytes)
            return await userinfo(request, form: form)
        }
    }

    /// kube-apiserver's TokenReview webhook. The caller proves itself with the configured bearer
    /// token (constant-time compare); without one configured the webhook is off.
    func tokenReview(_ request: Request, _ context: PortalContext) async throws -> Response {
        guard let expected = runtime.webhookToken, !expected.isEmpty else {
            return Responses.json(.notFound, #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the TokenReview webhook is not configured (webhook.bearer_token_file)","code":404}"#)
        }
        let sent = request.headers[.authorization].flatMap { $0.count > 7 && $0.prefix(7).lowercased() == "bearer " ? String($0.dropFirst(7)) : nil } ?? ""
        guard Secrets.constantTimeEqual(sent, expected) else {
            return Responses.json(.unauthorized, #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"unauthorized","code":401}"#,
                                  extra: [.wwwAuthenticate: #"Bearer realm="portal-webhook""#])
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: runtime.config.maxBodyBytes) } catch {
            return Responses.json(.contentTooLarge, #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"request too large","code":413}"#)
        }
        let credentials = runtime.credentials
        let reply = await TokenReview.handle(Data(body.readableBytesView), acceptedAudiences: runtime.config.webhookAudiences) {
            await credentials.validate($0)
        }
        Counter(label: "portal_webhook_requests_total", dimensions: [("result", reply.status != 200 ? "bad_request" : reply.authenticated ? "authenticated" : "refused")]).increment()
        return Responses.json(HTTPResponse.Status(code: reply.status), reply.json)
    }

    /// RFC 7009 / RFC 7662 endpoints: a form body with client authentication; OAuth error JSON on failure.
    func clientForm(_ request: Request, _ context: PortalContext,
                    _ body: (FormParameters, String?) async throws(OAuthError) -> Response) async throws -> Response {
        var request = request
        let basic = request.headers[.authorization]
        let form: FormParameters
        do { form = try await request.form(limit: runtime.config.maxBodyBytes) } catch .tooLarge {
            return Responses.oauthError(.tooLarge("the request body is too large"))
        } catch .wrongType {
            return Responses.oauthError(.invalidRequest("the body must be application/x-www-form-urlencoded"))
        } catch {
            return Responses.oauthError(.invalidRequest("the body is not valid form encoding"))
        }
        do { return try await body(form, basic) } catch {
            let usedBasic = basic.map { $0.lowercased().hasPrefix("basic ") } ?? false
            return Responses.oauthError(error, basicAuthUsed: usedBasic)
        }
    }

    func discovery() async -> Response {
        Responses.json(.ok, await provider.discoveryJSON(), noStore: false, extra: Self.publicFiveMinutes)
    }

    func token(_ request: Request, _ context: PortalContext) async throws -> Response {
        let userAgent = request.headers[.userAgent] ?? ""
        return try await clientForm(request, context) { (form, basic) throws(OAuthError) in
            do throws(OAuthError) {
                if form["grant_type"] == CredentialService.exchangeGrantType {
                    return Responses.json(.ok, try await runtime.credentials.exchange(form, authorizationHeader: basic, remoteAddress: context.remoteAddress))
                }
                let result = try await provider.token(form, authorizationHeader: basic, remoteAddress: context.remoteAddress, userAgent: userAgent)
                return Responses.json(.ok, result.json)
            } catch {
                if error.code != "invalid_grant" && error.code != "invalid_client" {
                    context.logger.info("token request refused", metadata: ["error": .string(error.code)])
                }
                throw error
            }
        }
    }

    /// OIDC Core §5.3 with the bearer token in the header (RFC 6750 §2.1) or a POST body (§2.2).
    func userinfo(_ request: Request, form: FormParameters?) async -> Response {
        var token: String?
        if let h = request.headers[.authorization], h.count > 7, h.prefix(7).lowercased() == "bearer " {
            token = String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        if let t = form?["access_token"] {
            if token != nil { return Responses.oauthError(.invalidRequest("send the access token once")) }
            token = t
        }
        guard let token, !token.isEmpty else {
            return Responses.json(.unauthorized, OAuthError.invalidToken("an access token is required").json,
                                  extra: [.wwwAuthenticate: #"Bearer realm="portal""#])
        }
        do {
            return Responses.json(.ok, try await provider.userinfo(accessToken: token))
        } catch {
            var extra: HTTPFields = [:]
            if error.code == "invalid_token" {
                extra[.wwwAuthenticate] = #"Bearer realm="portal", error="invalid_token", error_description="\#(error.errorDescription)""#
            }
            return Responses.json(HTTPResponse.Status(code: error.status), error.json, extra: extra)
        }
    }
}
