import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IdP
import Testing
@testable import Portal

@Suite struct Discovery {
    @Test func discovery_lists_exactly_what_is_implemented() async throws {
        try await withPortal { p, client in
            let r = try await client.get("/.well-known/openid-configuration")
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            let d = try r.json()
            #expect(d["issuer"] as? String == p.issuer)
            #expect(d["authorization_endpoint"] as? String == p.issuer + "/authorize")
            #expect(d["token_endpoint"] as? String == p.issuer + "/token")
            #expect(d["userinfo_endpoint"] as? String == p.issuer + "/userinfo")
            #expect(d["jwks_uri"] as? String == p.issuer + "/keys")
            #expect(d["response_types_supported"] as? [String] == ["code"])
            #expect(d["response_modes_supported"] as? [String] == ["query"])
            // Every grant the token endpoint accepts, token exchange (application credentials) included.
            #expect(d["grant_types_supported"] as? [String] == ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code",
                                                                "urn:ietf:params:oauth:grant-type:token-exchange"])
            #expect(d["device_authorization_endpoint"] as? String == p.issuer + "/device/code")
            #expect(d["end_session_endpoint"] as? String == p.issuer + "/end-session")
            #expect(d["revocation_endpoint"] as? String == p.issuer + "/revoke")
            #expect(d["introspection_endpoint"] as? String == p.issuer + "/introspect")
            #expect(Set(d["introspection_endpoint_auth_methods_supported"] as? [String] ?? []) == ["client_secret_basic", "client_secret_post"])
            #expect(d["backchannel_logout_supported"] as? Bool == true)
            #expect(d["backchannel_logout_session_supported"] as? Bool == true)
            #expect((d["claims_supported"] as? [String] ?? []).contains("sid"))
            #expect(d["code_challenge_methods_supported"] as? [String] == ["S256"])
            #expect(Set(d["token_endpoint_auth_methods_supported"] as? [String] ?? [])
                    == ["client_secret_basic", "client_secret_post", "none"])
            #expect(d["authorization_response_iss_parameter_supported"] as? Bool == true)
            #expect(d["id_token_signing_alg_values_supported"] as? [String] == ["RS256"])
            #expect(d["subject_types_supported"] as? [String] == ["public"])
            #expect(d["request_parameter_supported"] as? Bool == false)
            #expect(d["request_uri_parameter_supported"] as? Bool == false)
            #expect((d["scopes_supported"] as? [String] ?? []).contains("openid"))
            // Nothing that is not implemented is claimed.
            for absent in ["registration_endpoint", "frontchannel_logout_supported"] {
                #expect(d[absent] == nil, "\(absent) is advertised but not implemented")
            }
        }
    }

    @Test func both_discovery_documents_agree_on_issuer_and_endpoints() async throws {
        try await withPortal { p, client in
            let oidc = try await client.get("/.well-known/openid-configuration")
            let oauth = try await client.get("/.well-known/oauth-authorization-server")
            #expect(oauth.status == .ok)
            #expect(oauth.contentType == "application/json")
            let a = try oidc.json(), b = try oauth.json()
            for key in ["issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"] {
                #expect(a[key] as? String != nil)
                #expect(a[key] as? String == b[key] as? String, "\(key) differs")
            }
            #expect(Set(a.keys) == Set(b.keys))
            #expect(oidc.text == oauth.text)
            // Public metadata may be cached; it carries no token.
            #expect(oidc.headers[.cacheControl]?.hasPrefix("public") == true)
            #expect(b["issuer"] as? String == p.issuer)
        }
    }

    @Test func jwks_uri_serves_the_signing_key() async throws {
        try await withPortal { p, client in
            let d = try await client.get("/.well-known/openid-configuration").json()
            let jwksURI = try #require(d["jwks_uri"] as? String)
            try #require(jwksURI.hasPrefix(p.issuer))
            let r = try await client.get(String(jwksURI.dropFirst(p.issuer.count)))
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            let keys = try #require(try r.json()["keys"] as? [[String: Any]])
            #expect(!keys.isEmpty)
            let signing = try p.rt.keys.signingKey()
            let jwk = try #require(keys.first { $0["kid"] as? String == signing.kid })
            #expect(jwk["kty"] as? String == "RSA")
            #expect(jwk["alg"] as? String == "RS256")
            #expect(jwk["use"] as? String == "sig")
            #expect(jwk["n"] is String && jwk["e"] is String)
            // Public parts only.
            for k in keys { for priv in ["d", "p", "q", "dp", "dq", "qi"] { #expect(k[priv] == nil) } }
        }
    }
}

@Suite struct Probes {
    @Test func healthz_and_readyz_answer_200() async throws {
        try await withPortal { _, client in
            let h = try await client.get("/healthz")
            #expect(h.status == .ok)
            #expect(h.contentType == "application/json")
            #expect(try h.json()["status"] as? String == "ok")
            let r = try await client.get("/readyz")
            #expect(r.status == .ok)
            #expect(r.contentType == "application/json")
            #expect(try r.json()["status"] as? String == "ready")
        }
    }
}
