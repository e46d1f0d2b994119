import Foundation
import IdP
import Testing

/// The kubeconfig and the one-line commands are pure functions of their inputs, pinned by
/// golden files (set PORTAL_UPDATE_GOLDEN=1 to rewrite them after an intended change).
@Suite struct KubeconfigGoldenTests {
    static let ca = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUX1\n-----END CERTIFICATE-----\n"
    static let awkward = ClusterSpec(name: "Prod \"EU\" ‘ü’ 'x' $HOME `id`", server: "https://k8s.example.org:6443",
                                     caPEM: ca, namespace: "team a", clientID: "kubernetes")
    static let plain = ClusterSpec(name: "dev", server: "https://10.0.0.1", caPEM: nil, namespace: nil, clientID: "kubernetes")
    static let creds = OIDCCredentials(issuer: "https://portal.example.org", clientID: "kubernetes", idToken: "eyJhbGciOiJSUzI1NiJ9.e30.sig",
                                       refreshToken: "R3fr3sh_t0ken-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", issuerCAPEM: ca)
    static let entries = [
        KubeconfigEntry(cluster: awkward, userName: "zoë o'neil", auth: .authProvider(creds)),
        KubeconfigEntry(cluster: plain, userName: "alice", auth: .authProvider(OIDCCredentials(issuer: "https://portal.example.org",
            clientID: "kubernetes", idToken: "id.token.two", refreshToken: "refresh-two"))),
    ]
    static let execEntry = KubeconfigEntry(cluster: awkward, userName: "zoë o'neil",
                                           auth: .exec(issuer: "https://portal.example.org", clientID: "kubernetes", issuerCAPEM: ca))

    func golden(_ name: String, _ actual: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name)")
        if ProcessInfo.processInfo.environment["PORTAL_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: url, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(actual == expected, "golden file \(name) differs; rerun with PORTAL_UPDATE_GOLDEN=1 if the change is intended")
    }

    @Test func kubeconfigWithTwoClustersMatchesGolden() throws {
        try golden("kubeconfig-two-clusters.yaml", Kubeconfig.yaml(Self.entries))
    }

    @Test func pluginKubeconfigMatchesGolden() throws {
        let entry = KubeconfigEntry(cluster: Self.execEntry.cluster, userName: "zoë o'neil", auth: .plugin(issuer: "https://portal.example.org", clientID: "kubernetes"))
        try golden("kubeconfig-plugin.yaml", Kubeconfig.yaml([entry]))
        try golden("setup-plugin-bash.txt", Kubeconfig.command(entry, shell: .bash) + "\n")
    }

    @Test func execKubeconfigMatchesGolden() throws {
        try golden("kubeconfig-exec.yaml", Kubeconfig.yaml([Self.execEntry]))
    }

    @Test func bashLineMatchesGolden() throws {
        try golden("setup-bash.txt", Kubeconfig.command(Self.entries[0], shell: .bash) + "\n")
    }

    @Test func powershellLineMatchesGolden() throws {
        try golden("setup-powershell.txt", Kubeconfig.command(Self.entries[0], shell: .powershell) + "\n")
    }

    @Test func execBashLineMatchesGolden() throws {
        try golden("setup-exec-bash.txt", Kubeconfig.command(Self.execEntry, shell: .bash) + "\n")
    }

    @Test func apiServerSetupMatchesGolden() throws {
        let setup = APIServerSetup(issuer: "https://portal.example.org", clientIDs: ["kubernetes"], usernameClaim: "preferred_username",
                                   usernamePrefix: "oidc:", groupsClaim: "groups", groupsPrefix: "oidc:", signingAlgorithms: [.rs256],
                                   issuerCAPEM: Self.ca)
        try golden("apiserver-flags.txt", setup.flags + "\n")
        try golden("apiserver-authentication-config.yaml", setup.authenticationConfiguration)
        try golden("apiserver-webhook.kubeconfig", setup.webhookKubeconfig)
        try golden("apiserver-webhook-flags.txt", setup.webhookFlags + "\n")
    }

    /// The quoting is right when a real bash gives back every byte: spaces, quotes, $, backticks, non-ASCII.
    @Test(arguments: ["plain", "two words", "it's", "'", "''", "\"double\"", "$HOME", "`id`", "back\\slash", "zoë ‘ü’ 日本", "a\nb", "!event"])
    func bashQuotingRoundTripsThroughRealBash(_ value: String) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "printf '%s' " + Kubeconfig.bashQuote(value)]
        let out = Pipe()
        p.standardOutput = out
        // Wait without blocking a thread of Swift's (small) cooperative pool.
        let done = AsyncStream<Void> { continuation in
            p.terminationHandler = { _ in continuation.yield(); continuation.finish() }
        }
        try p.run()
        for await _ in done { break }
        let got = String(data: out.fileHandleForReading.readDataToEndOfFile(), encoding: .utf8)
        #expect(got == value)
    }

    @Test func powershellQuotingDoublesEverySingleQuoteKind() {
        #expect(Kubeconfig.powershellQuote("it's") == "'it''s'")
        #expect(Kubeconfig.powershellQuote("‘ü’") == "'‘‘ü’’'")
        #expect(Kubeconfig.powershellQuote("$env:HOME `n \"x\"") == "'$env:HOME `n \"x\"'")
    }

    @Test func yamlScalarsEscapeControlAndQuoteCharacters() {
        let y = Kubeconfig.yaml([KubeconfigEntry(cluster: ClusterSpec(name: "a\"b\\c\nd\u{1}", server: "https://x"), userName: "u",
                                                 auth: .authProvider(Self.creds))])
        #expect(y.contains(#"- name: "a\"b\\c\nd\u0001""#))
    }
}
