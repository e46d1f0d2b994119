import Foundation
import Mustache

/// One row of a credential's create form: an expiry choice with the date it leads to.
public struct LifetimeOption: Sendable {
    public var value: Int; public var label: String; public var until: String; public var selected: Bool
    public init(value: Int, label: String, until: String, selected: Bool) { self.value = value; self.label = label; self.until = until; self.selected = selected }
}

/// /credentials (a person's own) and /admin/robots/credential (a robot's, made by an administrator).
public struct CredentialsView: PageView {
    public static let template = "credentials"
    public struct Item {
        public var id, name, created, lastUsed, expires, expiresIn, groups, csrf: String
        public var description: String?
        public var soon: Bool
        public init(id: String, name: String, description: String?, created: String, lastUsed: String, expires: String, expiresIn: String,
                    soon: Bool, groups: String, csrf: String) {
            self.id = id; self.name = name; self.description = description; self.created = created; self.lastUsed = lastUsed
            self.expires = expires; self.expiresIn = expiresIn; self.soon = soon; self.groups = groups; self.csrf = csrf
        }
    }
    public struct Admin { public var tabs: [AdminTab]; public init(tabs: [AdminTab]) { self.tabs = tabs } }

    public var chrome: Chrome
    public var csrf: String
    public var heading = "Application credentials"
    public var intro: String
    public var admin: Admin?
    public var formAction = "/credentials"
    public var ownerID: String?
    public var whose = "your"
    public var lifetimes: [LifetimeOption]
    public var groups: [String]
    public var restrictable: Bool
    public var showList = true
    public var items: [Item]
    public var hasItems: Bool
    public var error: String?
    public var notice: String?

    public init(chrome: Chrome, intro: String, lifetimes: [LifetimeOption], groups: [String], items: [Item], error: String? = nil, notice: String? = nil) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.intro = intro; self.lifetimes = lifetimes; self.groups = groups
        self.restrictable = !groups.isEmpty; self.items = items; self.hasItems = !items.isEmpty
        self.error = error; self.notice = notice
    }
}

/// One template for every admin section: tabs, an optional filter bar, forms, a table with per-row actions, pagination.
public struct AdminView: PageView {
    public static let template = "admin"
    public struct Option { public var value, label: String; public var selected: Bool
        public init(value: String, label: String, selected: Bool = false) { self.value = value; self.label = label; self.selected = selected } }
    public struct Field {
        public var id: String
        public var name, label, type, value, placeholder: String
        public var required: Bool
        public var checkbox: Bool
        public var select: Bool
        public var options: [Option]
        public init(_ name: String, _ label: String, type: String = "text", value: String = "", placeholder: String = "", required: Bool = false,
                    options: [Option] = []) {
            self.id = name + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            self.name = name; self.label = label; self.type = type; self.value = value; self.placeholder = placeholder
            self.required = required; self.checkbox = type == "checkbox"; self.select = !options.isEmpty
            self.options = options
        }
    }
    public struct Form {
        public var title, action, submit, anchor: String
        public var csrf: String
        public var fields: [Field]
        public init(title: String, action: String, submit: String, csrf: String, fields: [Field], anchor: String = "add") {
            self.title = title; self.action = action; self.submit = submit; self.csrf = csrf; self.fields = fields; self.anchor = anchor
        }
    }
    /// A GET form above the list: inline, one line on a wide screen.
    public struct Filter { public var action: String; public var fields: [Field]; public var active: Bool
        public init(action: String, fields: [Field], active: Bool) { self.action = action; self.fields = fields; self.active = active } }
    public struct Hidden { public var name, value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value } }
    public struct Action {
        public var id: String
        public var action, label, csrf: String
        /// What the action acts on, for screen readers ("Revoke ci-deployer").
        public var object: String
        public var hidden: [Hidden]
        public var danger: Bool
        public var link: String?
        public var input: String?
        public var inputLabel: String
        public var inputType: String
        public init(_ label: String, action: String, csrf: String, object: String, hidden: [Hidden], danger: Bool = false, link: String? = nil,
                    input: String? = nil, inputLabel: String = "", inputType: String = "text") {
            self.id = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            self.label = label; self.action = action; self.csrf = csrf; self.object = object; self.hidden = hidden; self.danger = danger
            self.link = link; self.input = input; self.inputLabel = inputLabel; self.inputType = inputType
        }
    }
    /// A table cell: `kind` is its CSS class (wrap: free text that may break; nowrap: dates, states; id: identifiers).
    public struct Cell {
        public var text: String; public var label: String; public var kind: String; public var code: Bool
        public var sub: String?; public var title: String?
        /// The cell's text is a link to this page (a person's page, say).
        public var link: String?
        public init(_ text: String, kind: String = "wrap", code: Bool = false, sub: String? = nil, title: String? = nil, link: String? = nil) {
            self.text = text; self.label = ""; self.kind = kind; self.code = code; self.sub = sub; self.title = title; self.link = link
        }
        public static func date(_ text: String) -> Cell { Cell(text, kind: "nowrap") }
        public static func id(_ text: String) -> Cell { Cell(text, kind: "id", code: true, title: text) }
    }
    public struct Row { public var cells: [Cell]; public var actions: [Action]
        public init(cells: [Cell], actions: [Action] = []) { self.cells = cells; self.actions = actions } }

    public var chrome: Chrome
    public var csrf: String
    public var heading: String
    public var intro: String?
    public var tabs: [AdminTab]
    public var filter: Filter?
    public var forms: [Form]
    /// The first form, linked above the list ("Add a user").
    public var firstForm: Form?
    public var columns: [String]
    public var rows: [Row]
    public var hasRows: Bool
    public var hasActions: Bool
    public var empty: String
    public var emptyHref: String?
    public var emptyLink: String
    public var nextPage: String?
    public var nextLabel = "Older entries →"
    public var previousPage: String?
    /// "51–100 of 5,000".
    public var pageInfo: String?
    public var error: String?
    public var notice: String?

    public init(chrome: Chrome, current: String, heading: String, intro: String? = nil, filter: Filter? = nil, forms: [Form] = [],
                columns: [String], rows: [Row], empty: String, emptyHref: String? = nil, emptyLink: String = "", nextPage: String? = nil) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.heading = heading; self.intro = intro
        self.tabs = AdminSections.tabs(current: current)
        self.filter = filter; self.forms = forms; self.firstForm = forms.first; self.columns = columns
        // Every cell knows its column, so narrow screens can show rows as labelled cards.
        self.rows = rows.map { r in
            var r = r
            for i in r.cells.indices where i < columns.count { r.cells[i].label = columns[i] }
            return r
        }
        self.hasRows = !rows.isEmpty; self.hasActions = rows.contains { !$0.actions.isEmpty }
        self.empty = empty; self.emptyHref = emptyHref; self.emptyLink = emptyLink; self.nextPage = nextPage
    }
}

/// "Revoke ci-deployer's credential?": what will stop working, and the one button that does it.
public struct ConfirmView: PageView {
    public static let template = "confirm"
    public struct Option { public var name, value, label: String; public var hint: String?; public var selected: Bool
        public init(name: String, value: String, label: String, hint: String? = nil, selected: Bool = false) {
            self.name = name; self.value = value; self.label = label; self.hint = hint; self.selected = selected
        } }
    public struct Choice { public var legend: String; public var options: [Option]
        public init(legend: String, options: [Option]) { self.legend = legend; self.options = options } }
    public var chrome: Chrome
    public var csrf: String
    public var heading: String
    public var consequences: [String]
    public var action: String
    public var hidden: [AdminView.Hidden]
    public var choice: Choice?
    public var submit: String
    public var danger: Bool
    public var cancel: String
    public init(chrome: Chrome, heading: String, consequences: [String], action: String, hidden: [AdminView.Hidden], choice: Choice? = nil,
                submit: String, danger: Bool = true, cancel: String) {
        self.chrome = chrome; self.csrf = chrome.csrf; self.heading = heading; self.consequences = consequences; self.action = action
        self.hidden = hidden; self.choice = choice; self.submit = submit; self.danger = danger; self.cancel = cancel
    }
}

/// A one-time secret (a credential's token, a kubectl command with a refresh token), from a GET that works once.
public struct ShownView: PageView {
    public static let template = "shown"
    public struct Item { public var id, label, text, what: String; public var hint: String?
        public init(id: String, label: String, text: String, what: String, hint: String? = nil) {
            self.id = id; self.label = label; self.text = text; self.what = what; self.hint = hint
        } }
    public var chrome: Chrome
    public var heading: String
    public var notice: String?
    public var error: String?
    public var items: [Item]
    public var back: String
    public var backLabel: String
    public init(chrome: Chrome, heading: String, notice: String?, items: [Item], back: String, backLabel: String) {
        self.chrome = chrome; self.heading = heading; self.notice = notice; self.items = items; self.back = back; self.backLabel = backLabel
    }
}

/// /admin/users/<name>: one person — groups and where they come from, sign-ins, credentials,
/// the audit trail — with the actions that change them (not one set per row of a long list).
public struct PersonView: PageView {
    public static let template = "person"
    public struct Action { public var action, label, csrf, username, back: String; public var danger: Bool
        public var input: String?; public var inputLabel: String; public var inputType: String
        public init(_ label: String, action: String, csrf: String, username: String, back: String, danger: Bool = false,
                    input: String? = nil, inputLabel: String = "", inputType: String = "text") {
            self.label = label; self.action = action; self.csrf = csrf; self.username = username; self.back = back; self.danger = danger
            self.input = input; self.inputLabel = inputLabel; self.inputType = inputType
        } }
    public struct Family { public var id, device, client, started, lastUsed, csrf, back: String; public var address: String?
        public init(id: String, device: String, address: String?, client: String, started: String, lastUsed: String, csrf: String, back: String) {
            self.id = id; self.device = device; self.address = address; self.client = client; self.started = started; self.lastUsed = lastUsed
            self.csrf = csrf; self.back = back
        } }
    public struct Credential { public var id, name, created, expires, state, csrf, back: String; public var active: Bool
        public init(id: String, name: String, created: String, expires: String, state: String, csrf: String, back: String) {
            self.id = id; self.name = name; self.created = created; self.expires = expires; self.state = state; self.csrf = csrf
            self.back = back; self.active = state == "active"
        } }
    public struct Event { public var time, type, actor, address: String; public var ok: Bool
        public init(time: String, type: String, actor: String, address: String, ok: Bool) {
            self.time = time; self.type = type; self.actor = actor; self.address = address; self.ok = ok
        } }

    public var chrome: Chrome
    public var tabs = AdminSections.tabs(current: "/admin/users")
    public struct Session { public var method, started, ends: String
        public var id = "", device = "", address = "", lastActive = "", csrf = "", back = ""
        public init(method: String, started: String, ends: String) { self.method = method; self.started = started; self.ends = ends } }
    public var username, displayName, email, source, status, adminWhy, subject, browserSessions, auditLink: String
    public var auditAboutLink = ""
    public var sessions: [Session] = [] { didSet { hasSessions = !sessions.isEmpty } }
    public var hasSessions = false
    /// Directory people are changed in the directory: no actions here but ending sign-ins and revoking credentials.
    public var hasActions: Bool
    public var groups: [String]
    public var actions: [Action]
    public var families: [Family]
    public var hasFamilies: Bool
    public var credentials: [Credential]
    public var hasCredentials: Bool
    public var events: [Event]
    public var hasEvents: Bool
    public var notice: String?
    public var error: String?

    public init(chrome: Chrome, username: String, displayName: String, email: String, source: String, status: String, adminWhy: String,
                subject: String, groups: [String], browserSessions: String, actions: [Action], families: [Family],
                credentials: [Credential], events: [Event], auditLink: String) {
        self.chrome = chrome; self.username = username; self.displayName = displayName; self.email = email; self.source = source
        self.status = status; self.adminWhy = adminWhy; self.subject = subject; self.groups = groups; self.browserSessions = browserSessions
        self.actions = actions; self.hasActions = !actions.isEmpty; self.families = families; self.hasFamilies = !families.isEmpty; self.credentials = credentials
        self.hasCredentials = !credentials.isEmpty; self.events = events; self.hasEvents = !events.isEmpty; self.auditLink = auditLink
    }
}

// Named lookups for the rows of long admin tables: a switch instead of reflecting every
// property of every context on each `{{name}}` (what Mirror does), measured by bench/pages.sh.
extension AdminView.Cell: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "text": text
        case "label": label
        case "kind": kind
        case "code": code
        case "sub": sub
        case "title": title
        case "link": link
        default: nil
        }
    }
}

extension AdminView.Row: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "cells": cells
        case "actions": actions
        default: nil
        }
    }
}

extension AdminView.Action: MustacheParent {
    public func child(named name: String) -> Any? {
        switch name {
        case "id": id
        case "action": action
        case "label": label
        case "csrf": csrf
        case "object": object
        case "hidden": hidden
        case "danger": danger
        case "link": link
        case "input": input
        case "inputLabel": inputLabel
        case "inputType": inputType
        default: nil
        }
    }
}

extension AdminView.Hidden: MustacheParent {
    public func child(named key: String) -> Any? {
        switch key {
        case "name": name
        case "value": value
        default: nil
        }
    }
}

extension AdminView: MustacheParent {
    public func child(named key: String) -> Any? {
        switch key {
        case "chrome": chrome
        case "csrf": csrf
        case "heading": heading
        case "intro": intro
        case "tabs": tabs
        case "filter": filter
        case "forms": forms
        case "firstForm": firstForm
        case "columns": columns
        case "rows": rows
        case "hasRows": hasRows
        case "hasActions": hasActions
        case "empty": empty
        case "emptyHref": emptyHref
        case "emptyLink": emptyLink
        case "nextPage": nextPage
        case "nextLabel": nextLabel
        case "previousPage": previousPage
        case "pageInfo": pageInfo
        case "error": error
        case "notice": notice
        default: nil
        }
    }
}
