import Foundation

/// Lifetimes and windows of everything the provider issues (all configurable).
public struct TokenPolicy: Sendable {
    public var idTokenTTL: TimeInterval = 60
    public var accessTokenTTL: TimeInterval = 60
    public var codeTTL: TimeInterval = 60
    /// A refresh token not used for this long is dead.
    public var refreshIdleTimeout: TimeInterval = 15 * 60
    /// A refresh family ends this long after the login that started it, whatever the activity.
    public var refreshAbsoluteLifetime: TimeInterval = 12 * 3600
    /// A replay of a just-rotated token by the same client within this window gets the same successor.
    public var refreshGraceWindow: TimeInterval = 5
    /// How long after its request started a rotation may still commit (the storage's bounded waits:
    /// connection plus statements). A client that gave up meanwhile and retries must still land in
    /// the grace window, so the window is measured with this added.
    public var refreshGraceSlack: TimeInterval = 0
    /// How long a pending authorization waits for the user to log in.
    public var pendingAuthorizationTTL: TimeInterval = 10 * 60
    /// How long a browser login session lasts.
    public var sessionTTL: TimeInterval = 12 * 3600
    /// How long a device authorization (RFC 8628) waits for the person to approve it.
    public var deviceCodeTTL: TimeInterval = 600
    /// A browser session with no request for this long has ended.
    public var sessionIdleTimeout: TimeInterval = 30 * 60

    /// The id_token `acr` for logins with and without a second factor ("" = no claim); see `MFAPolicy`.
    public var acrMultiFactor = ""
    public var acrSingleFactor = ""

    public init() {}
}
