import Foundation

/// How kube-apiserver should trust the portal: flags and the equivalent
/// AuthenticationConfiguration (apiserver.config.k8s.io/v1). Pure; golden-tested.
public struct APIServerSetup: Sendable, Equatable {
    public var issuer: String
    public var clientIDs: [String]
    public var usernameClaim: String
    public var usernamePrefix: String
    public var groupsClaim: String
    public var groupsPrefix: String
    public var signingAlgorithms: [SigningAlgorithm]
    /// PEM of the CA behind the portal's TLS certificate, when private.
    public var issuerCAPEM: String?
    /// Where the operator puts that CA on the control-plane nodes.
    public var caFilePath: String

    public init(issuer: String, clientIDs: [String], usernameClaim: String, usernamePrefix: String, groupsClaim: String,
                groupsPrefix: String, signingAlgorithms: [SigningAlgorithm], issuerCAPEM: String?,
                caFilePath: String = "/etc/kubernetes/pki/portal-ca.crt") {
        self.issuer = issuer; self.clientIDs = clientIDs; self.usernameClaim = usernameClaim; self.usernamePrefix = usernamePrefix
        self.groupsClaim = groupsClaim; self.groupsPrefix = groupsPrefix; self.signingAlgorithms = signingAlgorithms
        self.issuerCAPEM = issuerCAPEM; self.caFilePath = caFilePath
    }

    /// The `--oidc-*` flags (one audience only: the flags take a single client id).
    public var flags: String {
        var f = [
            "--oidc-issuer-url=\(issuer)",
            "--oidc-client-id=\(clientIDs.first ?? "kubernetes")",
            "--oidc-username-claim=\(usernameClaim)",
        ]
        if !usernamePrefix.isEmpty { f.append("--oidc-username-prefix=\(usernamePrefix)") }
        f.append("--oidc-groups-claim=\(groupsClaim)")
        if !groupsPrefix.isEmpty { f.append("--oidc-groups-prefix=\(groupsPrefix)") }
        f.append("--oidc-signing-algs=\(signingAlgorithms.map(\.rawValue).joined(separator: ","))")
        if issuerCAPEM != nil { f.append("--oidc-ca-file=\(caFilePath)") }
        return f.joined(separator: "\n")
    }

    /// The structured form (`--authentication-config FILE`; GA in 1.34, mutually exclusive with the flags).
    /// It has no algorithm field: the API server accepts the asymmetric algorithms it knows.
    public var authenticationConfiguration: String {
        var y = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n"
        y += "    url: \(Kubeconfig.q(issuer))\n    audiences:\n"
        for c in clientIDs { y += "    - \(Kubeconfig.q(c))\n" }
        if clientIDs.count > 1 { y += "    audienceMatchPolicy: MatchAny\n" }
        if let ca = issuerCAPEM {
            y += "    certificateAuthority: |\n"
            for line in ca.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false) {
                y += "      \(line)\n"
            }
        }
        y += "  claimMappings:\n    username:\n      claim: \(Kubeconfig.q(usernameClaim))\n      prefix: \(Kubeconfig.q(usernamePrefix))\n"
        y += "    groups:\n      claim: \(Kubeconfig.q(groupsClaim))\n      prefix: \(Kubeconfig.q(groupsPrefix))\n"
        if usernameClaim == "email" {
            y += "  claimValidationRules:\n  - expression: 'claims.?email_verified.orValue(false) == true'\n    message: the email address must be verified\n"
        }
        return y
    }
}
