import Foundation

public struct CredentialsView: PageView {
    public static let template = "credentials"
    public struct Lifetime { public var value: Int; public var label: String; public var selected: Bool
        public init(value: Int, label: String, selected: Bool) { self.value = value; self.label = label; self.selected = selected } }
    public struct Item { public var id, name, description, created, lastUsed, expires, groups, csrf, rotateAction, revokeAction: String
        public init(id: String, name: String, description: String, created: String, lastUsed: String, expires: String, groups: String,
                    csrf: String, rotateAction: String, revokeAction: String) {
            self.id = id; self.name = name; self.description = description; self.created = created; self.lastUsed = lastUsed
            self.expires = expires; self.groups = groups; self.csrf = csrf; self.rotateAction = rotateAction; self.revokeAction = revokeAction
        } }
    public struct Kubeconfig { public var index: Int; public var cluster: String; public var yaml: String
        public init(index: Int, cluster: String, yaml: String) { self.index = index; self.cluster = cluster; self.yaml = yaml } }
    public struct Created { public var name: String; public var token: String; public var kubeconfigs: [Kubeconfig]
        public init(name: String, token: String, kubeconfigs: [Kubeconfig]) { self.name = name; self.token = token; self.kubeconfigs = kubeconfigs } }

    public var csrf: String
    public var username: String
    public var isAdmin: Bool
    public var formAction = "/credentials"
    public var lifetimes: [Lifetime]
    public var groups: [String]
    public var restrictable: Bool
    public var items: [Item]
    public var hasItems: Bool
    public var created: Created?
    public var error: String?
    public var notice: String?

    public init(csrf: String, username: String, isAdmin: Bool, lifetimes: [Lifetime], groups: [String], items: [Item],
                created: Created? = nil, error: String? = nil, notice: String? = nil) {
        self.csrf = csrf; self.username = username; self.isAdmin = isAdmin; self.lifetimes = lifetimes; self.groups = groups
        self.restrictable = !groups.isEmpty; self.items = items; self.hasItems = !items.isEmpty; self.created = created
        self.error = error; self.notice = notice
    }
}

/// One template for every admin section: tabs, forms, a table with per-row actions, pagination.
public struct AdminView: PageView {
    public static let template = "admin"
    public struct Tab { public var href, label: String; public var current: Bool }
    public struct Option { public var value, label: String
        public init(value: String, label: String) { self.value = value; self.label = label } }
    public struct Field {
        public var id: String
        public var name, label, type, value, placeholder: String
        public var required: Bool
        public var hidden: Bool
        public var checkbox: Bool
        public var select: Bool
        public var options: [Option]
        public init(_ name: String, _ label: String, type: String = "text", value: String = "", placeholder: String = "", required: Bool = false,
                    options: [Option] = []) {
            self.id = name + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            self.name = name; self.label = label; self.type = type; self.value = value; self.placeholder = placeholder
            self.required = required; self.hidden = type == "hidden"; self.checkbox = type == "checkbox"; self.select = !options.isEmpty
            self.options = options
        }
    }
    public struct Form {
        public var title, action, submit, method: String
        public var post: Bool
        public var csrf: String
        public var fields: [Field]
        public init(title: String, action: String, submit: String, csrf: String, fields: [Field], method: String = "post") {
            self.title = title; self.action = action; self.submit = submit; self.csrf = csrf; self.fields = fields
            self.method = method; self.post = method == "post"
        }
    }
    public struct Hidden { public var name, value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value } }
    public struct Action {
        public var id: String
        public var action, label, csrf: String
        public var hidden: [Hidden]
        public var danger: Bool
        public var input: String?
        public var inputLabel: String
        public var inputType: String
        public init(_ label: String, action: String, csrf: String, hidden: [Hidden], danger: Bool = false, input: String? = nil,
                    inputLabel: String = "", inputType: String = "text") {
            self.id = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            self.label = label; self.action = action; self.csrf = csrf; self.hidden = hidden; self.danger = danger
            self.input = input; self.inputLabel = inputLabel; self.inputType = inputType
        }
    }
    public struct Row { public var cells: [String]; public var actions: [Action]
        public init(cells: [String], actions: [Action] = []) { self.cells = cells; self.actions = actions } }

    public var csrf: String
    public var username: String
    public var isAdmin = true
    public var heading: String
    public var intro: String?
    public var tabs: [Tab]
    public var forms: [Form]
    public var columns: [String]
    public var rows: [Row]
    public var hasRows: Bool
    public var nextPage: String?
    public var error: String?
    public var notice: String?
    public var secret: String?

    public static let sections: [(String, String)] = [("/admin/users", "Users"), ("/admin/robots", "Robots"), ("/admin/credentials", "Credentials"),
                                                      ("/admin/sessions", "Sessions"), ("/admin/keys", "Signing keys"), ("/admin/clients", "Clients"),
                                                      ("/admin/throttles", "Throttles"), ("/admin/audit", "Audit log"), ("/admin/apiserver", "API server setup")]

    public init(csrf: String, username: String, current: String, heading: String, intro: String? = nil, forms: [Form] = [],
                columns: [String], rows: [Row], nextPage: String? = nil, error: String? = nil, notice: String? = nil, secret: String? = nil) {
        self.csrf = csrf; self.username = username; self.heading = heading; self.intro = intro
        self.tabs = Self.sections.map { Tab(href: $0.0, label: $0.1, current: $0.0 == current) }
        self.forms = forms; self.columns = columns; self.rows = rows; self.hasRows = !rows.isEmpty; self.nextPage = nextPage
        self.error = error; self.notice = notice; self.secret = secret
    }
}
