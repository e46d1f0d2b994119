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
    /// `webhook.audiences`: a TokenReview must name one of these (empty: any).
    public var webhookAudiences: [String] = []
    /// `mfa.require`, and `mfa.groups` for `.groups`: the API server refuses tokens without `mfa` in `amr`
    /// for whom the portal's policy requires a second factor (`claimValidationRules`, a CEL expression).
    public var mfaRequirement: MFAPolicy.Requirement = .none
    public var mfaGroups: [String] = []

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
        var rules: [(String, String)] = []
        if usernameClaim == "email" { rules.append(("claims.?email_verified.orValue(false) == true", "the email address must be verified")) }
        if let mfa = mfaRule { rules.append(mfa) }
        if !rules.isEmpty {
            y += "  claimValidationRules:\n"
            for (expression, message) in rules { y += "  - expression: \(Kubeconfig.q(expression))\n    message: \(Kubeconfig.q(message))\n" }
        }
        return y
    }

    /// The CEL expression that refuses a token minted without a second factor: for everyone, or for members of
    /// the policy's groups. (Administrators are not a claim: with `require: admins` the page offers the
    /// everyone rule as an option instead.)
    public var mfaRule: (expression: String, message: String)? {
        let has = "has(claims.amr) && 'mfa' in claims.amr"
        let message = "a second factor is required: sign in to \(issuer) with a passkey or an authenticator code"
        switch mfaRequirement {
        case .everyone: return (has, message)
        case .groups where !mfaGroups.isEmpty:
            let list = mfaGroups.map { "'" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'" }
                .joined(separator: ", ")
            return ("!(has(claims.groups) && claims.groups.exists(g, g in [\(list)])) || (\(has))", message)
        default: return nil
        }
    }

    /// The rule for everyone, offered on the page when the policy does not put one in the configuration.
    public var optionalMFARule: String? {
        guard mfaRule == nil else { return nil }
        return "  claimValidationRules:\n  - expression: \(Kubeconfig.q("has(claims.amr) && 'mfa' in claims.amr"))\n"
            + "    message: \(Kubeconfig.q("a second factor is required: sign in to \(issuer) with a passkey or an authenticator code"))\n"
    }

    /// The kubeconfig kube-apiserver uses to call the portal's TokenReview webhook
    /// (`--authentication-token-webhook-config-file`). The bearer token is a placeholder:
    /// the operator pastes the content of `webhook.bearer_token_file`.
    public var webhookKubeconfig: String {
        var y = "apiVersion: v1\nkind: Config\nclusters:\n- name: portal\n  cluster:\n"
        y += "    server: \(Kubeconfig.q(issuer + "/webhook/tokenreview"))\n"
        if let ca = issuerCAPEM { y += "    certificate-authority-data: \(Kubeconfig.q(Kubeconfig.base64(ca)))\n" }
        y += "users:\n- name: kube-apiserver\n  user:\n    token: \"PASTE-THE-CONTENT-OF-webhook.bearer_token_file\"\n"
        y += "contexts:\n- name: webhook\n  context:\n    cluster: portal\n    user: kube-apiserver\ncurrent-context: webhook\n"
        return y
    }

    /// Flags that turn the webhook on (they combine with either OIDC form). With `webhook.audiences`
    /// set, kube-apiserver must name one of them: its `--api-audiences` (which replaces the default,
    /// its service-account issuer, so that stays first).
    public var webhookFlags: String {
        var f = [
            "--authentication-token-webhook-config-file=/etc/kubernetes/portal-webhook.kubeconfig",
            "--authentication-token-webhook-version=v1",
            "--authentication-token-webhook-cache-ttl=2m0s",
        ]
        if let first = webhookAudiences.first { f.append("--api-audiences=<your --service-account-issuer>,\(first)") }
        return f.joined(separator: "\n")
    }

    /// What `--api-audiences` goes with the portal's `webhook.audiences`, in words.
    public var audienceAdvice: String {
        guard !webhookAudiences.isEmpty else {
            return "kube-apiserver names its --api-audiences in every TokenReview (by default its --service-account-issuer). "
                + "webhook.audiences is empty, so the portal accepts whatever it names: leave --api-audiences as it is."
        }
        return "The portal accepts a TokenReview only if it names one of \(webhookAudiences.joined(separator: ", ")) (webhook.audiences). "
            + "kube-apiserver names its --api-audiences, which default to its --service-account-issuer alone, so every credential would be "
            + "refused: add one of them beside the issuer, as in the last flag above (keep the issuer in the list, or service-account tokens "
            + "stop working; the first value is the audience new service-account tokens get, so the issuer goes first), or empty webhook.audiences."
    }
}
