import Foundation
import Mustache
import Templates
import Testing

/// The admin table types answer template lookups with a switch (speed); this keeps the switch
/// complete: every stored property a template could name answers, with the same value or nil.
@Suite struct TemplateLookups {
    func check(_ value: some MustacheParent, _ type: String) {
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            let viaSwitch = value.child(named: label)
            let isNil = Mirror(reflecting: child.value).displayStyle == .optional && Mirror(reflecting: child.value).children.isEmpty
            #expect(viaSwitch != nil || isNil, "\(type).\(label) is not answered by child(named:)")
            // The same value: the one rendered through Mirror before.
            if let v = viaSwitch, !isNil { #expect(String(reflecting: v) == String(reflecting: unwrap(child.value)), "\(type).\(label)") }
        }
    }

    @Test func everyPropertyOfTheAdminTableTypesAnswers() {
        let chrome = Chrome(csrf: "c", username: "u", isAdmin: true, section: .admin)
        let action = AdminView.Action("Revoke", action: "/a", csrf: "c", object: "o", hidden: [.init("id", "1")], danger: true,
                                      link: "/l", input: "password", inputLabel: "new", inputType: "password")
        let row = AdminView.Row(cells: [.init("t", sub: "s", title: "x", link: "/p")], actions: [action])
        var view = AdminView(chrome: chrome, current: "/admin/users", heading: "H", intro: "I",
                             filter: .init(action: "/f", fields: [], active: true),
                             forms: [.init(title: "T", action: "/x", submit: "S", csrf: "c", fields: [])],
                             columns: ["A"], rows: [row], empty: "E", emptyHref: "#add", emptyLink: "L", nextPage: "/n")
        view.previousPage = "/p"; view.pageInfo = "1–1 of 1"; view.error = "e"; view.notice = "n"
        check(view, "AdminView")
        check(view.rows[0], "Row")
        check(view.rows[0].cells[0], "Cell")
        check(action, "Action")
        check(AdminView.Hidden("id", "1"), "Hidden")
    }
}

private func unwrap(_ value: Any) -> Any {
    let m = Mirror(reflecting: value)
    return m.displayStyle == .optional ? (m.children.first?.value ?? value) : value
}
