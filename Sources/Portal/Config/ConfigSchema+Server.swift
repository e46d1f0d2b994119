import Foundation

private let day: TimeInterval = 86400

extension ConfigSchema {
    /// The server itself: addresses, database, logs, tokens, keys, sign-in rules.
    static let server: [ConfigKey] = [
        .init("issuer", .string, default: "http://localhost:8080", env: "PORTAL_ISSUER",
              "The OIDC issuer URL: what kube-apiserver's --oidc-issuer-url names, byte for byte. https is required except on loopback; no query, fragment or trailing slash."),
        .init("listen", .string, default: "127.0.0.1:8080", env: "PORTAL_LISTEN",
              "Address to listen on, host:port (0.0.0.0:8080 for every interface)."),
        .init("data_dir", .string, default: "./portal-data", env: "PORTAL_DATA_DIR",
              "Where the embedded SQLite database lives (portal.sqlite, created with mode 0700)."),

        .init("database", .section, "The database. SQLite in data_dir unless url says otherwise."),
        .init("database.url", .string, example: "postgres://portal:PASSWORD@db.example.org:5432/portal?sslmode=verify-full", secret: .value,
              env: "PORTAL_DATABASE_URL",
              "sqlite:///absolute/path.sqlite (overrides data_dir), or postgres://user:password@host:5432/database for several replicas (sslmode: disable, prefer, require, verify-ca or verify-full; the default is verify-full except on loopback). Holds the password: prefer the environment variable from a Secret."),
        .init("database.pool_size", .int(1...200), default: "10", "PostgreSQL connections per replica."),
        .init("database.ca_file", .string, example: "/etc/portal/db-ca.crt", "CA certificate (PEM) for sslmode verify-ca and verify-full."),
        .init("database.acquire_timeout", .duration(0.1...120), default: "3s",
              "The longest a request waits for a database connection; then it is answered 503."),

        .init("tls", .section, optionalSection: true,
              "Serve HTTPS directly (PEM files). Without it, terminate TLS in front of the portal; cookies get the __Host- prefix and Secure, and HSTS is sent, whenever the issuer is https."),
        .init("tls.certificate_file", .string, example: "/etc/portal/tls.crt", required: true, "The server certificate chain (PEM)."),
        .init("tls.key_file", .string, example: "/etc/portal/tls.key", secret: .file, required: true, "The server's private key (PEM)."),
        .init("tls.ca_file", .string, example: "/etc/portal/ca.crt",
              "The CA that signed the certificate, when it is private: kubectl gets it as idp-certificate-authority-data and the API server setup page names it for --oidc-ca-file."),

        .init("log", .section, "Logs on standard error."),
        .init("log.level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), default: "info",
              env: "PORTAL_LOG_LEVEL", "The least severe level logged."),
        .init("log.format", .choice(["auto", "json", "text"]), default: "auto", env: "PORTAL_LOG_FORMAT",
              "auto: one readable line per event (time, level, label, message, key=value) when standard error is a terminal, JSON otherwise; json: always one JSON object per line, with request_id; text: swift-log's plain lines."),

        .init("tokens", .section, "Token and session lifetimes."),
        .init("tokens.id_token_lifetime", .duration(5...3600), default: "60s", "How long an id_token is valid."),
        .init("tokens.access_token_lifetime", .duration(5...3600), default: "60s", "How long an access token (for /userinfo) is valid."),
        .init("tokens.code_lifetime", .duration(5...600), default: "60s", "How long an authorization code may be redeemed (once)."),
        .init("tokens.refresh_idle_timeout", .duration(60...(30 * day)), default: "15m",
              "A refresh token unused this long is dead (at most refresh_absolute_lifetime)."),
        .init("tokens.refresh_absolute_lifetime", .duration(60...(365 * day)), default: "12h",
              "A login's refresh chain ends this long after the login, however often it is used."),
        .init("tokens.refresh_grace_window", .duration(0...60), default: "5s",
              "Parallel refreshes of one token within this window get the same successor."),
        .init("tokens.session_lifetime", .duration(60...(30 * day)), default: "12h", "The portal's own browser session, at most (absolute)."),
        .init("tokens.device_code_lifetime", .duration(10...3600), default: "10m",
              "How long a sign-in started on another device (the device authorization grant, RFC 8628) waits for approval at /device."),
        .init("tokens.session_idle_timeout", .duration(10...(30 * day)), default: "30m",
              "A browser session with no page view or sign-in redirect for this long has ended (Keycloak's SSO idle default). kubectl sessions have their own, refresh_idle_timeout."),

        .init("signing", .section, "Token signing keys; they live in the database."),
        .init("signing.algorithm", .choice(["RS256", "ES256"]), default: "RS256", "RS256 (kube-apiserver's default) or ES256."),
        .init("signing.rotation_period", .duration(3600...(365 * day)), default: "30d", "Each key signs this long."),
        .init("signing.publish_ahead", .duration(0...(30 * day)), default: "1h",
              "The least time a new key is in JWKS before it signs (never less than the JWKS max-age of 60 s plus check_interval)."),
        .init("signing.encryption_key_file", .string, example: "/etc/portal/kek", secret: .file, env: "PORTAL_KEY_ENCRYPTION_KEY",
              "A file holding the key-encryption key (at least 32 characters) that seals signing keys and MAC secrets at rest. The environment variable holds the key itself and wins over the file. Without either the portal warns at every start and stores keys unencrypted. The CLI needs the same key as the server."),
        .init("signing.check_interval", .duration(1...3600), default: "30s", "How often each replica re-reads the keys (and rotates when due)."),

        .init("passwords", .section, "Local passwords."),
        .init("passwords.bcrypt_cost", .int(10...16), default: "12", "bcrypt cost for new and changed passwords."),
        .init("passwords.min_length", .int(8...128), default: "8", "The shortest password accepted, in characters."),

        .init("login", .section,
              "Sign-in throttling (smart lockout). Failures are counted per account and address; failures from addresses an account never signed in from are also counted per account and per address, and those counters only ever delay such unfamiliar attempts: nobody elsewhere can lock a person out at their usual address. The same rule throttles wrong client secrets at /token (account \"client:ID\")."),
        .init("login.max_failures_per_user", .int(1...1000), default: "5", "Failures per account and address; then that pair waits `lockout`."),
        .init("login.max_failures_unfamiliar", .int(1...100_000), default: "50", "Failures per account from all the addresses it never signed in from."),
        .init("login.max_failures_per_address", .int(1...100_000), default: "20",
              "Failures per address on accounts never signed in from there (password spraying)."),
        .init("login.failure_window", .duration(1...day), default: "15m", "Failures are forgotten this long after the last delay ended."),
        .init("login.lockout", .duration(1...day), default: "1m", "The first delay; it doubles with each further failure, up to 16 times."),
        .init("login.familiar_for", .duration(0...(365 * day)), default: "30d", "An address stays familiar this long after a sign-in from it."),

        .init("server", .section, "The HTTP server."),
        .init("server.trusted_proxies", .strings, default: "[]",
              "Reverse proxies (addresses or CIDR ranges, e.g. [\"10.0.0.0/8\"]) whose forwarded header names the client, read right to left; from anyone else the header is ignored."),
        .init("server.forwarded_header", .choice(["x-forwarded-for", "forwarded"]), default: "x-forwarded-for",
              "The one header your proxies set (forwarded: RFC 7239); the other is never read."),
        .init("server.header_timeout", .duration(1...600), default: "10s", "A new connection must complete its request headers within this."),
        .init("server.body_timeout", .duration(1...600), default: "30s", "Then the request body within this."),
        .init("server.idle_timeout", .duration(1...3600), default: "60s", "And, kept alive, the next request's headers within this."),

        .init("metrics", .section, "GET /metrics (Prometheus). Without a token file it answers loopback peers only."),
        .init("metrics.bearer_token_file", .string, example: "/etc/portal-metrics/token", secret: .file,
              "A file holding the bearer token (at least 32 characters) that /metrics then requires, from anywhere."),
        .init("metrics.public", .bool, default: "false", "true: anyone may read /metrics (counts only; no names or tokens)."),

        .init("setup", .section, "The first administrator."),
        .init("setup.link_lifetime", .duration(60...(7 * day)), default: "1h", "How long the one-time setup link printed at start works."),

        .init("ui", .section, "The web pages."),
        .init("ui.public_dir", .string, example: "/etc/portal/public", env: "PORTAL_PUBLIC_DIR",
              "A directory whose files (portal.css, portal.js, …) are served at /static/ instead of the built-in ones, which ship with the binary (portal_Assets.resources beside it)."),

        .init("credentials", .section, "Application credentials (kpc_ tokens) for people and robots."),
        .init("credentials.max_user_lifetime", .duration(3600...(3 * 365 * day)), default: "90d", "The longest expiry a person may give their own credential."),
        .init("credentials.max_robot_lifetime", .duration(3600...(5 * 365 * day)), default: "365d", "The longest expiry of a robot's credential."),
        .init("credentials.max_rotation_overlap", .duration(0...(90 * day)), default: "7d",
              "The longest time the old secret keeps working after a rotation."),

        .init("admin_groups", .strings, default: "[]",
              "Members of these groups (local or directory) are administrators, besides users with the admin flag."),

        .init("webhook", .section, "The TokenReview webhook kube-apiserver calls for application credentials (/webhook/tokenreview)."),
        .init("webhook.bearer_token_file", .string, example: "/etc/portal/webhook-token", secret: .file,
              "A file holding the bearer token (at least 32 characters) kube-apiserver presents; no file, no webhook."),
        .init("webhook.audiences", .strings, default: "[]",
              "Audiences a TokenReview's spec.audiences must include one of; empty accepts any."),
    ]
}
