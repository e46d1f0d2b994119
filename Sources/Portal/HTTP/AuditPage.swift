import Foundation
import IdP
import Templates

/// /admin/audit: an inline filter bar (event type, actor, a date range), names for subjects, and
/// times in words instead of epoch seconds.
struct AuditPage {
    let runtime: Runtime
    static let pageSize = 50

    typealias F = AdminView.Field
    typealias C = AdminView.Cell

    /// `yyyy-MM-dd` (an `<input type=date>`) at 00:00 UTC.
    static func day(_ text: String?) -> Date? {
        guard let text, !text.isEmpty else { return nil }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return f.date(from: text)
    }

    /// A detail's value in words: times stored as epoch seconds become dates, ids become names.
    static func detail(_ key: String, _ value: String, _ names: Names) -> String {
        if let name = names.byID[value] { return "\(key) \(name)" }
        if key.hasSuffix("_at") || key.hasSuffix("until") || key == "expires" || key == "time", let n = Double(value), n > 1_000_000_000, n < 10_000_000_000 {
            return "\(key) \(AdminPages.date(Date(timeIntervalSince1970: n)))"
        }
        return "\(key)=\(value)"
    }

    func view(_ q: FormParameters, chrome: Chrome) async throws -> AdminView {
        func param(_ k: String) -> String? { q[k].flatMap { $0.isEmpty ? nil : $0 } }
        let type = param("type"), actor = param("actor"), subject = param("subject"), from = param("from"), to = param("to")
        let before = q["before"].flatMap { Int64($0) }
        let since = Self.day(from)
        let until = Self.day(to).map { $0 + 86400 }  // "to" is inclusive: up to the end of that day
        let events = try await runtime.storage.auditEvents(AuditQuery(type: type, actor: actor, subject: subject, since: since, until: until, before: before,
                                                                      limit: Self.pageSize))
        var next: String?
        if events.count == Self.pageSize, let last = events.last?.id {
            var params: [(String, String)] = [("before", String(last))]
            for (k, v) in [("type", type), ("actor", actor), ("subject", subject), ("from", from), ("to", to)] { if let v { params.append((k, v)) } }
            next = "/admin/audit?" + FormParameters.encode(params)
        }
        let types = try await runtime.storage.auditEventTypes()
        // Subjects, and detail values that may be ids (owner=…): looked up one by one, only these.
        let candidates = events.map(\.subject) + events.flatMap { $0.details.values.filter { $0.count >= 16 && $0.count <= 64 && !$0.contains(" ") } }
        var names = try await Names.load(runtime, ids: candidates, credentials: true)
        await names.addDirectoryNames(events.map(\.subject), runtime)
        let filter = AdminView.Filter(action: "/admin/audit", fields: [
            F("type", "Event", options: [.init(value: "", label: "All events", selected: type == nil)]
                + types.map { .init(value: $0, label: $0, selected: $0 == type) }),
            F("actor", "Actor", value: actor ?? "", placeholder: "username"),
            F("from", "From", type: "date", value: from ?? ""),
            F("to", "To", type: "date", value: to ?? ""),
        ] + (subject.map { [F("subject", "Subject", value: $0)] } ?? []), active: type != nil || actor != nil || subject != nil || from != nil || to != nil)
        let filtered = filter.active || before != nil
        return AdminView(chrome: chrome, current: "/admin/audit", heading: "Audit log",
                         intro: "Every sign-in, token, credential and administrative change, newest first. Times are UTC.",
                         filter: filter,
                         columns: ["Time", "Event", "Actor", "Subject", "Client", "Address", "Details"],
                         rows: events.map { e in
                             AdminView.Row(cells: [C.date(AdminPages.date(e.time)),
                                                   C(e.type, kind: e.success ? "nowrap" : "nowrap bad", sub: e.success ? nil : "failed"),
                                                   C(e.actor.isEmpty ? "—" : e.actor), C(e.subject.isEmpty ? "—" : names.name(e.subject)),
                                                   C(e.clientID.isEmpty ? "—" : e.clientID), C(e.remoteAddress.isEmpty ? "—" : e.remoteAddress),
                                                   C(e.details.sorted { $0.key < $1.key }.map { Self.detail($0.key, $0.value, names) }.joined(separator: "; "))])
                         },
                         empty: filtered ? "No events match these filters." : "Nothing has happened yet. Sign-ins, tokens and changes appear here as they happen.",
                         emptyHref: filtered ? "/admin/audit" : nil, emptyLink: "Show every event",
                         nextPage: next)
    }
}
