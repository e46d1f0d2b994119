import Foundation
import Hummingbird
import IdP
import Templates

/// `GET /shown/<id>`: a one-time secret made by the POST before it (see `Reveals`), shown once.
/// A second view, a reload, or another browser gets "already shown" and nothing else.
struct ShownRoutes {
    let runtime: Runtime
    let pages: Pages
    let browser: Browser
    let session: @Sendable (Request) async throws -> (LoginSession, Identity)?

    func register(_ router: Router<PortalContext>) {
        router.get("/shown/:id") { request, context in
            guard let (_, identity) = try await session(request) else { return Responses.redirect("/login") }
            let id = context.parameters.get("id") ?? ""
            let reveals = Reveals(runtime: runtime, browser: browser)
            let admin = isAdmin(identity, runtime)
            guard let (kind, payload) = try await reveals.open(id: id, request: request, owner: identity) else {
                let (_, clear) = browser.takeFlash(request)
                return Responses.html(.gone, pages.render(ErrorView(
                    heading: "Already shown", message: "A secret is shown once, and this one was already shown (or more than 10 minutes passed).",
                    hint: "Nothing can show it again. For a credential, rotate it to get a new secret; for kubectl, ask for a new command.",
                    requestID: context.requestID, backLink: "/", backLabel: "Back to the start page")), cookies: clear + [reveals.clearCookie()])
            }
            let (flash, clear) = browser.takeFlash(request)
            let (chrome, cookies) = browser.chrome(request, identity, isAdmin: admin, section: kind == "kubectl" ? .kubernetes : (payload["back"] == "/credentials" ? .credentials : .admin))
            let view: ShownView
            switch kind {
            case "kubectl": view = kubectl(payload, chrome: chrome, notice: flash?.notice)
            default: view = credential(payload, chrome: chrome, notice: flash?.notice)
            }
            return Responses.html(.ok, pages.render(view), cookies: cookies + clear + [reveals.clearCookie()], secret: true)
        }
    }

    func credential(_ p: [String: String], chrome: Chrome, notice: String?) -> ShownView {
        let token = p["token"] ?? "", user = p["user"] ?? ""
        var items = [ShownView.Item(id: "new-token", label: "Token", text: token, what: "the token",
                                    hint: "Use it as a bearer token: kubectl --token, or the kubeconfig below.")]
        for (i, c) in runtime.clusters.enumerated() {
            items.append(.init(id: "kc-\(i)", label: "kubeconfig for \(c.name)", text: Kubeconfig.yaml([KubeconfigEntry(cluster: c, userName: user, auth: .token(token))]),
                               what: "the kubeconfig for \(c.name)"))
        }
        let back = p["back"] ?? "/credentials"
        return ShownView(chrome: chrome, heading: "Your new token for “\(p["name"] ?? "")”", notice: notice, items: items, back: back,
                         backLabel: back == "/credentials" ? "Back to your credentials" : "Back to robots")
    }

    func kubectl(_ p: [String: String], chrome: Chrome, notice: String?) -> ShownView {
        guard let c = runtime.clusters.first(where: { $0.name == p["cluster"] }) else {
            return ShownView(chrome: chrome, heading: "That cluster is gone", notice: "It was removed from the configuration.", items: [],
                             back: "/kubernetes", backLabel: "Back to kubectl")
        }
        let e = KubeconfigEntry(cluster: c, userName: p["user"] ?? "",
                                auth: .authProvider(OIDCCredentials(issuer: runtime.config.issuer, clientID: c.clientID, idToken: p["id_token"] ?? "",
                                                                    refreshToken: p["refresh_token"] ?? "", issuerCAPEM: runtime.issuerCAPEM)))
        return ShownView(chrome: chrome, heading: "kubectl for \(c.name)", notice: notice, items: [
            .init(id: "bash-0", label: "bash / zsh", text: Kubeconfig.command(e, shell: .bash), what: "the bash command for \(c.name)",
                  hint: "Paste it into a terminal: it adds the cluster, your sign-in and a context to ~/.kube/config and switches to it."),
            .init(id: "ps-0", label: "PowerShell", text: Kubeconfig.command(e, shell: .powershell), what: "the PowerShell command for \(c.name)"),
        ], back: "/kubernetes", backLabel: "Back to kubectl")
    }
}
