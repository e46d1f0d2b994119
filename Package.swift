// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "portal",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "portal", targets: ["Portal"]),
        // The kubectl credential plugin: small, it links neither the server nor LDAP nor GSSAPI.
        .executable(name: "kubectl-portal", targets: ["KubectlPortal"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.9.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // kubectl-portal's HTTP client: TLS from BoringSSL (already built for the server), so the plugin
        // needs no libcurl — and, through it, no libldap or GSSAPI.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // OpenLDAP's libldap (Debian: libldap2-dev), for the LDAP authenticator.
        .systemLibrary(name: "CLDAP", path: "Sources/CLDAP", providers: [.apt(["libldap2-dev"])]),
        // MIT Kerberos' libgssapi_krb5 (Debian: libkrb5-dev), for SPNEGO logins.
        .systemLibrary(name: "CGSSAPI", path: "Sources/CGSSAPI", providers: [.apt(["libkrb5-dev"])]),
        // The system SQLite (Debian: libsqlite3-dev), for the embedded default database.
        .systemLibrary(name: "CSQLite3", path: "Sources/CSQLite3", providers: [.apt(["libsqlite3-dev"])]),
        // The system OpenSSL 3 libcrypto (Debian: libssl-dev): RS256 signing.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", providers: [.apt(["libssl-dev"])]),
        // zlib (Debian: zlib1g-dev): gzip response bodies.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Protocol core: OIDC/OAuth flows, tokens, keys, authenticators. No HTTP, no SQL.
        .target(
            name: "IdP",
            dependencies: [
                "CLDAP",
                "CGSSAPI",
                "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // SQL implementations of IdP's storage protocol: SQLite and PostgreSQL through one SQLKit layer.
        .target(
            name: "Storage",
            dependencies: [
                "IdP",
                "CSQLite3",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Server-rendered pages: mustache templates and the view models they take.
        .target(
            name: "Templates",
            dependencies: [
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: swiftSettings
        ),
        // The stylesheet and script the pages link to, as package resources (found beside the binary).
        .target(
            name: "Assets",
            resources: [.copy("Public")],
            swiftSettings: swiftSettings
        ),
        // The `portal` executable: CLI, configuration, HTTP application.
        .executableTarget(
            name: "Portal",
            dependencies: [
                "IdP", "Storage", "Templates", "Assets", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                // HTTPRequestPart/HTTPResponsePart for the slow-client guard (already built for Hummingbird).
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                // Swift concurrency's jobs on the event loops (no second pool of threads; see EventLoopExecutor).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                // RFC 6238 codes for authenticator apps (second factors).
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Back-channel logout requests (instead of URLSession, which means libcurl on Linux).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "KubectlPortal",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IdPTests",
            dependencies: ["IdP", "Storage"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: ["IdP", "Storage", .product(name: "SQLKit", package: "sql-kit"),
                           .product(name: "PostgresKit", package: "postgres-kit"), .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PortalTests",
            dependencies: [
                "Portal", "IdP", "Storage", "CZlib", "Templates",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
