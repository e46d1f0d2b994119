import Foundation

extension ConfigSchema {
    /// Clusters offered on the kubectl page, how API servers map claims, and OAuth clients.
    static let kubernetesAndClients: [ConfigKey] = [
        .init("kubernetes", .section, "Clusters offered on the Kubernetes page (/kubernetes), and how the API servers map claims."),
        .init("kubernetes.clusters", .sections, "The clusters; none: the page explains how to add one."),
        .init("kubernetes.clusters[].name", .string, example: "prod", required: true, "Becomes the kubeconfig cluster and context name."),
        .init("kubernetes.clusters[].server", .string, example: "https://k8s.example.org:6443", required: true, "The API server's https URL."),
        .init("kubernetes.clusters[].certificate_authority_file", .string, example: "/etc/portal/prod-ca.crt",
              "The API server's CA certificate (PEM), embedded in the kubeconfig."),
        .init("kubernetes.clusters[].certificate_authority_data", .string,
              example: #""-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n""#,
              "The same CA as PEM text, instead of certificate_authority_file (not both)."),
        .init("kubernetes.clusters[].namespace", .string, example: "default", "The context's default namespace."),
        .init("kubernetes.clusters[].client_id", .string, default: "kubernetes",
              "The OIDC client (audience) the API server expects; another one must be declared in clients."),

        .init("kubernetes.apiserver", .section,
              "How kube-apiserver maps claims to names: the API server setup page renders the matching flags. Never issued, whatever the prefix: a username or group in the reserved system: namespace (dropped and audited)."),
        .init("kubernetes.apiserver.username_claim", .choice(["sub", "preferred_username", "email"]), default: "preferred_username",
              "The claim Kubernetes takes the username from. It must exist for a person to get kubectl access: with email, a verified email."),
        .init("kubernetes.apiserver.username_prefix", .string, default: #""oidc:""#,
              "Kubernetes sees \"oidc:alice\" (robots: \"oidc:robot:NAME\"). \"\" is allowed but warned about: names then reach Kubernetes unprefixed."),
        .init("kubernetes.apiserver.groups_claim", .choice(["groups"]), default: "groups", "The portal puts groups in the groups claim."),
        .init("kubernetes.apiserver.groups_prefix", .string, default: #""oidc:""#,
              "Kubernetes sees groups as \"oidc:dev\". \"\" is allowed but warned about."),

        .init("clients", .sections,
              "OAuth clients. A built-in public client `kubernetes` (what kubectl uses; redirect URIs http://localhost:8000 and http://localhost:18000) always exists unless one with that id is declared here. Clients can also be added with `portal client add`."),
        .init("clients[].id", .string, example: "grafana", required: true, "The client_id."),
        .init("clients[].name", .string, example: "Grafana", "Shown on the sign-in page; default: the id."),
        .init("clients[].redirect_uris", .strings, example: #"["https://grafana.example.org/login/generic_oauth"]"#, required: true,
              "Redirect URIs, matched exactly."),
        .init("clients[].public", .bool, default: "false", "true: no secret, PKCE (S256) required (CLIs and single-page apps)."),
        .init("clients[].secret_file", .string, example: "/etc/portal/grafana-secret", secret: .file,
              "A file holding the client secret (at least 32 characters; openssl rand -base64 32)."),
        .init("clients[].secret_env", .string, example: "GRAFANA_CLIENT_SECRET", secret: .variable,
              "An environment variable holding the client secret, instead of secret_file."),
        .init("clients[].post_logout_redirect_uris", .strings, example: #"["https://grafana.example.org/login"]"#,
              "Where the portal may send the browser back after RP-initiated logout (end_session_endpoint), matched exactly, and only for a request carrying a valid id_token_hint of this client."),
        .init("clients[].backchannel_logout_uri", .string, example: "https://grafana.example.org/logout/backchannel",
              "OIDC Back-Channel Logout: the portal POSTs a signed logout token here when a session this client signed in through ends (sign-out, My devices, an administrator). Retried for 10 minutes."),
        .init("clients[].grant_types", .strings, default: #"["authorization_code", "refresh_token"]"#,
              "The grants the token endpoint accepts from this client; add urn:ietf:params:oauth:grant-type:device_code for the device authorization grant (RFC 8628: sign in on another device). The built-in kubernetes client has all three."),
        .init("clients[].introspect_all_clients", .bool, default: "false",
              "A resource server: may introspect (RFC 7662) tokens issued to other clients. Otherwise a client sees only its own tokens as active."),
    ]
}
