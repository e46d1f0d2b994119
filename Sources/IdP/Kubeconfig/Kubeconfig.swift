import Foundation

/// A cluster users get kubectl access to.
public struct ClusterSpec: Sendable, Equatable {
    public var name: String
    /// API server URL (https).
    public var server: String
    /// PEM of the CA that signed the API server's certificate; nil to trust the system roots.
    public var caPEM: String?
    public var namespace: String?
    /// The OIDC client (audience) the API server expects.
    public var clientID: String

    public init(name: String, server: String, caPEM: String? = nil, namespace: String? = nil, clientID: String = "kubernetes") {
        self.name = name; self.server = server; self.caPEM = caPEM; self.namespace = namespace; self.clientID = clientID
    }
}

/// What kubectl's `oidc` auth-provider needs for one user entry.
public struct OIDCCredentials: Sendable, Equatable {
    public var issuer: String
    public var clientID: String
    public var idToken: String
    public var refreshToken: String
    /// PEM of the CA behind the portal's own TLS certificate, when it is private.
    public var issuerCAPEM: String?

    public init(issuer: String, clientID: String, idToken: String, refreshToken: String, issuerCAPEM: String? = nil) {
        self.issuer = issuer; self.clientID = clientID; self.idToken = idToken; self.refreshToken = refreshToken
        self.issuerCAPEM = issuerCAPEM
    }
}

/// One cluster's entry: the cluster, and how its user authenticates.
public struct KubeconfigEntry: Sendable, Equatable {
    public enum Auth: Sendable, Equatable {
        /// kubectl's built-in `oidc` auth-provider with tokens embedded (refreshes by itself).
        case authProvider(OIDCCredentials)
        /// The kubelogin exec plugin (`kubectl oidc-login`), which logs in by itself.
        case exec(issuer: String, clientID: String, issuerCAPEM: String?)
        /// The portal's own plugin (`kubectl-portal get-token`): tokens live in its cache, never in the kubeconfig.
        case plugin(issuer: String, clientID: String)
        /// A static bearer token (an application credential checked by the TokenReview webhook).
        case token(String)
    }
    public var cluster: ClusterSpec
    public var userName: String
    public var auth: Auth

    public init(cluster: ClusterSpec, userName: String, auth: Auth) {
        self.cluster = cluster; self.userName = userName; self.auth = auth
    }

    /// kubeconfig names: the context is the cluster's name, the user entry "<user>@<cluster>".
    public var contextName: String { cluster.name }
    public var userEntryName: String { "\(userName)@\(cluster.name)" }
}

/// Pure renderers for kubeconfig files and one-line setup commands (tested against golden files).
public enum Kubeconfig {
    public static func base64(_ pem: String) -> String { Data(pem.utf8).base64EncodedString() }

    // MARK: YAML

    /// A complete kubeconfig for the entries; the first one is the current context.
    public static func yaml(_ entries: [KubeconfigEntry]) -> String {
        var y = "apiVersion: v1\nkind: Config\nclusters:\n"
        for e in entries {
            y += "- name: \(q(e.cluster.name))\n  cluster:\n    server: \(q(e.cluster.server))\n"
            if let ca = e.cluster.caPEM { y += "    certificate-authority-data: \(q(base64(ca)))\n" }
        }
        y += "users:\n"
        for e in entries {
            y += "- name: \(q(e.userEntryName))\n  user:\n"
            switch e.auth {
            case .authProvider(let c):
                y += "    auth-provider:\n      name: oidc\n      config:\n"
                y += "        idp-issuer-url: \(q(c.issuer))\n"
                y += "        client-id: \(q(c.clientID))\n"
                // A public client has no secret; kubectl ignores an empty one, and the Python kubernetes
                // client refuses to refresh without the key.
                y += "        client-secret: \"\"\n"
                if let ca = c.issuerCAPEM { y += "        idp-certificate-authority-data: \(q(base64(ca)))\n" }
                y += "        id-token: \(q(c.idToken))\n"
                y += "        refresh-token: \(q(c.refreshToken))\n"
            case .token(let t):
                y += "    token: \(q(t))\n"
            case .exec(let issuer, let clientID, let ca):
                y += "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubectl\n      args:\n"
                for a in execArgs(issuer: issuer, clientID: clientID, issuerCAPEM: ca) { y += "      - \(q(a))\n" }
                y += "      interactiveMode: IfAvailable\n      provideClusterInfo: false\n"
            case .plugin(let issuer, let clientID):
                y += "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: kubectl-portal\n      args:\n"
                for a in pluginArgs(issuer: issuer, clientID: clientID) { y += "      - \(q(a))\n" }
                y += "      interactiveMode: IfAvailable\n      provideClusterInfo: false\n"
            }
        }
        y += "contexts:\n"
        for e in entries {
            y += "- name: \(q(e.contextName))\n  context:\n    cluster: \(q(e.cluster.name))\n    user: \(q(e.userEntryName))\n"
            if let ns = e.cluster.namespace { y += "    namespace: \(q(ns))\n" }
        }
        y += "current-context: \(q(entries.first?.contextName ?? ""))\npreferences: {}\n"
        return y
    }

    static func pluginArgs(issuer: String, clientID: String) -> [String] {
        ["get-token", "--issuer", issuer] + (clientID == "kubernetes" ? [] : ["--client-id", clientID])
    }

    static func execArgs(issuer: String, clientID: String, issuerCAPEM: String?) -> [String] {
        var a = ["oidc-login", "get-token", "--oidc-issuer-url=\(issuer)", "--oidc-client-id=\(clientID)",
                 "--oidc-extra-scope=profile", "--oidc-extra-scope=email", "--oidc-extra-scope=groups"]
        if let ca = issuerCAPEM { a.append("--certificate-authority-data=\(base64(ca))") }
        return a
    }

    /// A YAML double-quoted scalar (JSON string syntax is valid YAML).
    static func q(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f || (0x80...0x9f).contains(u.value) || u.value == 0x2028 || u.value == 0x2029 || u.value == 0xfeff {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    // MARK: One-line setup commands

    public enum Shell: String, Sendable, CaseIterable { case bash, powershell }

    /// One line that configures cluster, user and context with stock kubectl, and switches to it.
    public static func command(_ e: KubeconfigEntry, shell: Shell) -> String {
        func quote(_ s: String) -> String { shell == .bash ? bashQuote(s) : powershellQuote(s) }
        let sep = shell == .bash ? " && " : "; "
        var parts: [String] = []
        var cluster = "kubectl config set-cluster \(quote(e.cluster.name)) --server=\(quote(e.cluster.server))"
        if let ca = e.cluster.caPEM {
            // kubectl reads the CA from a file; a temporary one holds it just long enough to embed it.
            switch shell {
            case .bash:
                parts.append("PORTAL_CA=\"$(mktemp)\"")
                parts.append("printf '%s' \(bashQuote(base64(ca))) | base64 -d > \"$PORTAL_CA\"")
                cluster += " --certificate-authority=\"$PORTAL_CA\" --embed-certs=true"
            case .powershell:
                parts.append("$PortalCA = New-TemporaryFile")
                parts.append("[IO.File]::WriteAllBytes($PortalCA.FullName, [Convert]::FromBase64String(\(powershellQuote(base64(ca)))))")
                cluster += " --certificate-authority=\"$($PortalCA.FullName)\" --embed-certs=true"
            }
        }
        parts.append(cluster)
        if e.cluster.caPEM != nil { parts.append(shell == .bash ? "rm -f \"$PORTAL_CA\"" : "Remove-Item $PortalCA") }

        var user = "kubectl config set-credentials \(quote(e.userEntryName))"
        switch e.auth {
        case .authProvider(let c):
            user += " --auth-provider=oidc"
            var args = [("idp-issuer-url", c.issuer), ("client-id", c.clientID)]
            if let ca = c.issuerCAPEM { args.append(("idp-certificate-authority-data", base64(ca))) }
            args += [("id-token", c.idToken), ("refresh-token", c.refreshToken)]
            for (k, v) in args { user += " --auth-provider-arg=\(quote(k + "=" + v))" }
        case .token(let t):
            user += " --token=\(quote(t))"
        case .exec(let issuer, let clientID, let ca):
            user += " --exec-api-version=client.authentication.k8s.io/v1beta1 --exec-command=kubectl"
            for a in execArgs(issuer: issuer, clientID: clientID, issuerCAPEM: ca) { user += " --exec-arg=\(quote(a))" }
        case .plugin(let issuer, let clientID):
            // v1beta1 here: kubectl before 1.28 has no --exec-interactive-mode, and v1 requires one (v1beta1 means IfAvailable).
            user += " --exec-api-version=client.authentication.k8s.io/v1beta1 --exec-command=kubectl-portal"
            for a in pluginArgs(issuer: issuer, clientID: clientID) { user += " --exec-arg=\(quote(a))" }
        }
        parts.append(user)
        var context = "kubectl config set-context \(quote(e.contextName)) --cluster=\(quote(e.cluster.name)) --user=\(quote(e.userEntryName))"
        if let ns = e.cluster.namespace { context += " --namespace=\(quote(ns))" }
        parts.append(context)
        parts.append("kubectl config use-context \(quote(e.contextName))")
        return parts.joined(separator: sep)
    }

    /// POSIX single quotes: everything literal; a ' becomes '\''. Works on Unicode scalars, never
    /// on characters: an apostrophe followed by a combining mark is one Character but still a
    /// byte ' to bash. Text with control characters (a newline would end a pasted line) uses
    /// ANSI-C quoting, $'…', with every control character escaped.
    public static func bashQuote(_ s: String) -> String {
        var out = ""
        if s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            out = "$'"
            for u in s.unicodeScalars {
                switch u {
                case "\\": out += "\\\\"
                case "'": out += "\\'"
                default:
                    if u.value < 0x20 || u.value == 0x7f { out += String(format: "\\x%02x", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "'"
        }
        out = "'"
        for u in s.unicodeScalars {
            if u == "'" { out += "'\\''" } else { out.unicodeScalars.append(u) }
        }
        return out + "'"
    }

    /// PowerShell single quotes: everything literal; any of the quote characters PowerShell
    /// treats as ' (U+0027, U+2018, U+2019, U+201A, U+201B) is doubled — scalar by scalar, so a
    /// combining mark cannot hide one.
    public static func powershellQuote(_ s: String) -> String {
        var out = "'"
        for u in s.unicodeScalars {
            out.unicodeScalars.append(u)
            if [0x27, 0x2018, 0x2019, 0x201A, 0x201B].contains(u.value) { out.unicodeScalars.append(u) }
        }
        return out + "'"
    }
}
