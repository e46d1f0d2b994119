/// A protocol error as a value (RFC 6749 §5.2, RFC 6750 §3.1, OIDC Core §3.1.2.6).
/// The HTTP layer renders it as JSON, a redirect or a page; IdP never knows which.
public struct OAuthError: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: String
    public let errorDescription: String
    public let status: Int

    public init(_ code: String, _ description: String, status: Int = 400) {
        self.code = code; self.errorDescription = description; self.status = status
    }

    public var description: String { "\(code): \(errorDescription)" }

    public static func invalidRequest(_ d: String) -> OAuthError { .init("invalid_request", d) }
    /// 401: the client could not be authenticated.
    public static func invalidClient(_ d: String) -> OAuthError { .init("invalid_client", d, status: 401) }
    public static func invalidGrant(_ d: String) -> OAuthError { .init("invalid_grant", d) }
    public static func unauthorizedClient(_ d: String) -> OAuthError { .init("unauthorized_client", d) }
    public static func unsupportedGrantType(_ d: String) -> OAuthError { .init("unsupported_grant_type", d) }
    public static func unsupportedResponseType(_ d: String) -> OAuthError { .init("unsupported_response_type", d) }
    public static func invalidScope(_ d: String) -> OAuthError { .init("invalid_scope", d) }
    public static func accessDenied(_ d: String) -> OAuthError { .init("access_denied", d, status: 403) }
    public static func loginRequired(_ d: String) -> OAuthError { .init("login_required", d) }
    public static func serverError(_ d: String) -> OAuthError { .init("server_error", d, status: 500) }
    public static func temporarilyUnavailable(_ d: String) -> OAuthError { .init("temporarily_unavailable", d, status: 503) }
    /// 401 at resource endpoints (userinfo), with `WWW-Authenticate: Bearer error="invalid_token"`.
    public static func invalidToken(_ d: String) -> OAuthError { .init("invalid_token", d, status: 401) }
    public static func methodNotAllowed(_ d: String) -> OAuthError { .init("invalid_request", d, status: 405) }
    public static func tooLarge(_ d: String) -> OAuthError { .init("invalid_request", d, status: 413) }

    public var json: String {
        var w = JSONObjectWriter()
        w.add("error", code)
        w.add("error_description", errorDescription)
        return w.string
    }
}
