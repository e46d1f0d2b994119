import Foundation
import Mustache

/// One typed view model per page (rendered through Mirror by swift-mustache, which escapes HTML).
public protocol PageView {
    static var template: String { get }
}

/// The top bar of a signed-in page: one navigation for people (Admin is one item), the current page marked.
public struct Chrome: Sendable {
    public struct Item: Sendable { public var href, label: String; public var current: Bool }
    public enum Section: String, Sendable { case home, kubernetes, credentials, admin, none }
    public var csrf: String
    public var username: String
    public var isAdmin: Bool
    public var items: [Item]
    public init(csrf: String, username: String, isAdmin: Bool, section: Section) {
        self.csrf = csrf; self.username = username; self.isAdmin = isAdmin
        var items = [Item(href: "/", label: "Home", current: section == .home),
                     Item(href: "/kubernetes", label: "kubectl", current: section == .kubernetes),
                     Item(href: "/credentials", label: "Credentials", current: section == .credentials)]
        if isAdmin { items.append(Item(href: "/admin/users", label: "Admin", current: section == .admin)) }
        self.items = items
    }
}

/// The administration tabs (one list, the current one marked).
public struct AdminTab: Sendable { public var href, label: String; public var current: Bool }
public enum AdminSections {
    public static let all: [(String, String)] = [("/admin/users", "Users"), ("/admin/robots", "Robots"), ("/admin/credentials", "All credentials"),
                                                 ("/admin/sessions", "Sessions"), ("/admin/keys", "Signing keys"), ("/admin/clients", "Clients"),
                                                 ("/admin/throttles", "Throttles"), ("/admin/audit", "Audit log"), ("/admin/apiserver", "API server setup")]
    public static func tabs(current: String) -> [AdminTab] { all.map { AdminTab(href: $0.0, label: $0.1, current: $0.0 == current) } }
}

public struct LoginView: PageView {
    public static let template = "login"
    public var csrf: String
    public var pending: String?
    public var clientName: String?
    public var username: String
    public var error: String?
    public var next: String?
    /// A calm word above the form (e.g. "your session has ended"), not an error.
    public var notice: String?
    /// Shown under a failed sign-in, so a person can quote it to an administrator.
    public var requestID: String?
    /// No administrator exists yet: say that the setup link is the way in.
    public var setupPending = false
    /// Focus starts in Username, unless the name is already filled in.
    public var focusPassword: Bool
    /// After a sign-out, Kerberos is offered as a link instead of starting by itself.
    public var kerberosLink: String?
    public init(csrf: String, pending: String?, clientName: String?, username: String = "", error: String? = nil, next: String? = nil) {
        self.csrf = csrf; self.pending = pending; self.clientName = clientName; self.username = username; self.error = error
        self.next = next; self.focusPassword = !username.isEmpty
    }
}

public struct ErrorView: PageView {
    public static let template = "error"
    public var heading: String
    public var message: String
    public var hint: String?
    public var requestID: String?
    public var backLink: String?
    public var backLabel: String
    public init(heading: String, message: String, hint: String? = nil, requestID: String?, backLink: String? = "/", backLabel: String = "Back to the start page") {
        self.heading = heading; self.message = message; self.hint = hint; self.requestID = requestID
        self.backLink = backLink; self.backLabel = backLabel
    }
}

public struct SetupView: PageView {
    public static let template = "setup"
    public var csrf: String
    public var token: String
    public var username: String
    public var minLength: Int
    public var error: String?
    public init(csrf: String, token: String, username: String = "", minLength: Int, error: String? = nil) {
        self.csrf = csrf; self.token = token; self.username = username; self.minLength = minLength; self.error = error
    }
}

public struct HomeView: PageView {
    public static let template = "home"
    public struct Step { public var title, text: String; public var done: Bool; public var href: String?; public var link: String; public var code: String?
        public init(title: String, text: String, done: Bool, href: String? = nil, link: String = "", code: String? = nil) {
            self.title = title; self.text = text; self.done = done; self.href = href; self.link = link; self.code = code
        } }
    public var chrome: Chrome
    public var username: String
    public var displayName: String
    public var subject: String
    public var email: String?
    public var groups: [String]
    public var isAdmin: Bool
    public var method: String
    public var sessionEnds: String
    public var notice: String?
    public var error: String?
    public var steps: [Step] = [] { didSet { hasSteps = !steps.isEmpty } }
    public var hasSteps = false
    public init(chrome: Chrome, username: String, displayName: String, subject: String, email: String?, groups: [String],
                isAdmin: Bool, method: String, sessionEnds: String, notice: String? = nil) {
        self.chrome = chrome; self.username = username; self.displayName = displayName; self.subject = subject; self.email = email
        self.groups = groups; self.isAdmin = isAdmin; self.method = method; self.sessionEnds = sessionEnds; self.notice = notice
    }
}

/// The compiled templates, loaded once from this module's resources.
public struct Pages: Sendable {
    let library: MustacheLibrary

    public static func load() throws -> Pages {
        guard let base = Bundle.module.url(forResource: "base", withExtension: "mustache", subdirectory: "Resources")
            ?? Bundle.module.url(forResource: "base", withExtension: "mustache")
        else { throw PagesError.missing("Resources/base.mustache") }
        let dir = base.deletingLastPathComponent()
        var library = MustacheLibrary()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".mustache") }
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            try library.register(text, named: String(f.dropLast(".mustache".count)))
        }
        return Pages(library: library)
    }

    public func render<V: PageView>(_ view: V) -> String {
        library.render(view, withTemplate: V.template) ?? "<!doctype html><title>Error</title><p>Page template missing.</p>"
    }
}

public enum PagesError: Error { case missing(String) }

public struct KubernetesView: PageView {
    public static let template = "kubernetes"
    public struct Cluster {
        public var index: Int
        public var name: String
        public var server: String
        public var namespace: String?
        /// Commands are on the page only for the plugin variant (no tokens in them); otherwise a POST mints and shows them once.
        public var bash: String?
        public var powershell: String?
        public var csrf: String
        public var variant: String
        public init(index: Int, name: String, server: String, namespace: String?, bash: String?, powershell: String?, csrf: String, variant: String) {
            self.index = index; self.name = name; self.server = server; self.namespace = namespace; self.bash = bash
            self.powershell = powershell; self.csrf = csrf; self.variant = variant
        }
    }
    public var chrome: Chrome
    public var csrf: String
    /// A variant whose commands hold no token (kubelogin, the portal plugin): shown on the page.
    public var exec: Bool
    public var kubelogin: Bool
    public var plugin: Bool
    /// The plugin's one-line install (download, checksum, install), when the portal serves it.
    public var pluginInstall: String?
    public var issuer = ""
    public var variant: String
    public var lifetimeText: String
    public var clusters: [Cluster]
    public var multiple: Bool
    public var notice: String?
    public var error: String?
    /// The policy requires a second factor this sign-in lacks: why, instead of any setup.
    public var mfaRequired: String?
    public init(chrome: Chrome, variant: String, lifetimeText: String, clusters: [Cluster]) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.variant = variant
        self.kubelogin = variant == "exec"; self.plugin = variant == "plugin"; self.exec = kubelogin || plugin
        self.lifetimeText = lifetimeText; self.clusters = clusters; self.multiple = clusters.count > 1
    }
}

public struct APIServerView: PageView {
    public static let template = "apiserver"
    public var chrome: Chrome
    public var tabs = AdminSections.tabs(current: "/admin/apiserver")
    public var flags: String
    public var authenticationConfiguration: String
    public var usernameClaim: String
    public var usernamePrefix: String
    public var groupsPrefix: String
    public var caPEM: String?
    public var caFilePath: String
    public var webhookFlags: String = ""
    public var audienceAdvice: String = ""
    public var webhookKubeconfig: String = ""
    public var webhookEnabled = false
    /// A claimValidationRules entry that refuses tokens without a second factor, offered when the policy does not require one for everyone.
    public var optionalMFARule: String?
    public init(chrome: Chrome, flags: String, authenticationConfiguration: String, usernameClaim: String,
                usernamePrefix: String, groupsPrefix: String, caPEM: String?, caFilePath: String) {
        self.chrome = chrome; self.flags = flags; self.authenticationConfiguration = authenticationConfiguration
        self.usernameClaim = usernameClaim; self.usernamePrefix = usernamePrefix; self.groupsPrefix = groupsPrefix
        self.caPEM = caPEM; self.caFilePath = caFilePath
    }
}
