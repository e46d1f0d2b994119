import Foundation
import Testing
@testable import IdP

@Suite("LDAP: RFC 4515 escaping, DNs, configuration rules")
struct LDAPTests {
    @Test func escaperEncodesTheFiveSpecialsAndNothingElse() {
        // RFC 4515 §3: `*` `(` `)` `\` and NUL.
        #expect(LDAPFilter.escape("*") == "\\2a")
        #expect(LDAPFilter.escape("*)(uid=*") == "\\2a\\29\\28uid=\\2a")
        #expect(LDAPFilter.escape("x)(|(objectClass=*") == "x\\29\\28|\\28objectClass=\\2a")
        #expect(LDAPFilter.escape("a\\b") == "a\\5cb")
        #expect(LDAPFilter.escape("ali\u{0}ce") == "ali\\00ce")
        #expect(LDAPFilter.escape("uid=alice,ou=people,dc=example,dc=org") == "uid=alice,ou=people,dc=example,dc=org",
                "a DN is just a value: it can only match an attribute holding that literal text")
        #expect(LDAPFilter.escape("Jürgen Ωmega 中文") == "Jürgen Ωmega 中文", "UTF-8 passes unchanged")
        #expect(LDAPFilter.escape("") == "")
        #expect(LDAPFilter.escape("\\2a") == "\\5c2a", "an already-escaped look-alike is escaped again")
    }

    @Test func escapedValuesNeverChangeTheFilterStructure() {
        for hostile in ["*", "*)(uid=*", "x)(|(objectClass=*", "\u{0}", "(", ")", "\\", "a)(b", "*)(&", "))))((((("] {
            let filter = "(&(objectClass=inetOrgPerson)(uid=\(LDAPFilter.escape(hostile))))"
            #expect(LDAPFilter.isWellFormed(filter), "\(hostile)")
            #expect(!filter.dropFirst(2).contains("(uid=*"))
            #expect(filter.filter { $0 == "(" }.count == 3 && filter.filter { $0 == ")" }.count == 3)
        }
    }

    @Test func templatesAreFilledWithEscapedValues() {
        #expect(LDAPFilter.substitute("(&(objectClass=groupOfNames)(member={dn}))", ["dn": "cn=a\\,b (x),dc=org"])
                == "(&(objectClass=groupOfNames)(member=cn=a\\5c,b \\28x\\29,dc=org))")
        #expect(LDAPFilter.substitute("(memberUid={username})", ["username": "*"]) == "(memberUid=\\2a)")
        #expect(LDAPFilter.and("(objectClass=*)", "(uid=a)") == "(&(objectClass=*)(uid=a))")
        #expect(LDAPFilter.and(nil, "(uid=a)") == "(uid=a)")
    }

    @Test func wellFormedFiltersAreParenthesisedAndBalanced() {
        #expect(LDAPFilter.isWellFormed("(objectClass=*)"))
        #expect(LDAPFilter.isWellFormed("(&(a=b)(!(c=d)))"))
        #expect(LDAPFilter.isWellFormed("(cn=a\\29)"))
        #expect(!LDAPFilter.isWellFormed("objectClass=*"))
        #expect(!LDAPFilter.isWellFormed("(a=b))("))
        #expect(!LDAPFilter.isWellFormed("((a=b)"))
    }

    @Test func firstRDNIsUnescaped() {
        #expect(LDAPDN.firstRDN("cn=dev,ou=groups,dc=example,dc=org")! == ("cn", "dev"))
        #expect(LDAPDN.firstRDN("CN=Dev\\, Ops,OU=Groups")! == ("CN", "Dev, Ops"))
        #expect(LDAPDN.firstRDN("cn=caf\\C3\\A9,dc=org")! == ("cn", "café"))
        #expect(LDAPDN.firstRDN("cn=a+uid=b,dc=org")! == ("cn", "a"))
        #expect(LDAPDN.firstRDN("nonsense") == nil)
    }

    @Test func binarySubjectsRoundTripIntoAFilter() throws {
        #expect(LDAPAuthenticator.subjectString(Array("1ec1494c-7d30-1041-9322-5b5c19e211a2".utf8)) == "1ec1494c-7d30-1041-9322-5b5c19e211a2")
        let guid: [UInt8] = [0x00, 0xff, 0x28, 0x2a, 0x10]
        let sub = try #require(LDAPAuthenticator.subjectString(guid))
        #expect(sub.hasPrefix("b64:"))
        #expect(LDAPAuthenticator.subjectFilterValue(sub) == "\\00\\ff\\28\\2a\\10")
        #expect(LDAPAuthenticator.subjectFilterValue("a*b") == "a\\2ab")
        #expect(LDAPAuthenticator.subjectFilterValue("") == nil)
    }

    @Test func configurationProblemsNameTheirKeys() {
        var c = LDAPConfiguration()
        #expect(c.problems().map(\.key).contains("ldap.urls"))
        c.urls = ["ldap://a.example.org", "ldaps://b.example.org:636", "http://c", "ldap://d/dc=org"]
        c.userSearch.baseDN = "dc=example,dc=org"
        c.groups.baseDN = "ou=groups,dc=example,dc=org"
        let keys = c.problems().map(\.key)
        #expect(keys == ["ldap.urls[2]", "ldap.urls[3]"])

        c.urls = ["ldaps://b.example.org"]
        c.startTLS = true
        c.userSearch.filter = "objectClass=*"
        c.userSearch.usernameAttribute = "uid)(x"
        c.groups.filter = "(member=x)"
        c.accountState.disabledValue = "TRUE"
        let more = Set(c.problems().map(\.key))
        #expect(more == ["ldap.start_tls", "ldap.user_search.filter", "ldap.user_search.username_attribute", "ldap.groups.filter",
                         "ldap.account_state.disabled_value"])
    }

    @Test func defaultsSuitOpenLDAP() {
        let c = LDAPConfiguration()
        #expect(c.attributes.subject == "entryUUID")
        #expect(c.groups.filter == "(&(objectClass=groupOfNames)(member={dn}))")
        #expect(c.insecureSkipVerify == false)
        #expect(c.precedence == .localFirst)
    }

    @Test func blockingPoolRunsOffTheCallerAndIsBounded() async throws {
        let pool = BlockingThreadPool(name: "test", threads: 2, maxQueued: 2)
        #expect(BlockingThreadPool.currentPoolName == nil)
        #expect(try await pool.run { BlockingThreadPool.currentPoolName } == "test")
        // Two threads busy, two jobs queued: the fifth is refused at once. (The gate opens before
        // anything is awaited, so a wrong answer fails the test instead of hanging it.)
        let gate = Gate()
        var blockers: [Task<Int, any Error>] = []
        for _ in 0..<2 { blockers.append(Task { try await pool.run { gate.wait(); return 1 } }) }
        try await Task.sleep(for: .milliseconds(200))     // both threads have picked theirs up
        for _ in 0..<2 { blockers.append(Task { try await pool.run { gate.wait(); return 1 } }) }
        try await Task.sleep(for: .milliseconds(200))
        let fifth = Task { try await pool.run { 0 } }
        try await Task.sleep(for: .milliseconds(100))
        gate.open()
        let refused = await fifth.result
        #expect(throws: BlockingThreadPool.Saturated.self) { try refused.get() }
        var sum = 0
        for b in blockers { sum += try await b.value }
        #expect(sum == 4)
    }
}

final class Gate: @unchecked Sendable {
    private let c = NSCondition()
    private var isOpen = false
    func wait() { c.lock(); while !isOpen { c.wait() }; c.unlock() }
    func open() { c.lock(); isOpen = true; c.broadcast(); c.unlock() }
}
