import Foundation
import IdP
import Testing

@Suite("Storage conformance: audit log", .timeLimit(.minutes(2)))
struct AuditStoreConformance {
    static func seed(_ store: any Storage) async throws {
        let events = [
            AuditEvent(time: Fixture.t0, type: "login.success", actor: "alice", subject: "u-alice", remoteAddress: "10.0.0.1"),
            AuditEvent(time: Fixture.t0 + 1, type: "login.failure", actor: "bob", remoteAddress: "10.0.0.2", success: false,
                       details: ["reason": "invalid credentials"]),
            AuditEvent(time: Fixture.t0 + 2, type: "token.issue", actor: "alice", subject: "u-alice", clientID: "kubernetes",
                       details: ["family": "f1", "grant": "authorization_code"]),
            AuditEvent(time: Fixture.t0 + 3, type: "token.replay", subject: "u-alice", clientID: "kubernetes", success: false,
                       details: ["family": "f1"]),
            AuditEvent(time: Fixture.t0 + 4, type: "login.success", actor: "bob", subject: "u-bob"),
        ]
        for e in events { try await store.appendAudit(e) }
    }

    /// Events appended at once are committed together (one transaction or one multi-row INSERT):
    /// every one is stored whole, with its own id.
    @Test(arguments: Backends.all)
    func eventsAppendedAtOnceAreEachStoredWhole(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<60 {
                    group.addTask {
                        try await store.appendAudit(AuditEvent(time: Fixture.t0 + Double(i), type: "token.exchange", actor: "robot-\(i)",
                                                               subject: "c-\(i)", clientID: "kubernetes", remoteAddress: "10.0.0.\(i)",
                                                               success: i % 2 == 0, details: ["grant": "token-exchange", "n": "\(i)"]))
                    }
                }
                try await group.waitForAll()
            }
            let all = try await store.auditEvents(AuditQuery(type: "token.exchange", limit: 1000))
            #expect(all.count == 60)
            #expect(Set(all.compactMap(\.id)).count == 60)
            for e in all {
                let i = Int(e.actor.dropFirst("robot-".count)) ?? -1
                #expect(e.subject == "c-\(i)" && e.remoteAddress == "10.0.0.\(i)" && e.success == (i % 2 == 0))
                #expect(e.time == Fixture.t0 + Double(i) && e.details == ["grant": "token-exchange", "n": "\(i)"])
            }
        }
    }

    @Test(arguments: Backends.all)
    func appendedEventsComeBackNewestFirstWithIds(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await Self.seed(store)
            let all = try await store.auditEvents(AuditQuery())
            #expect(all.map(\.type) == ["login.success", "token.replay", "token.issue", "login.failure", "login.success"])
            let ids = all.compactMap(\.id)
            #expect(ids.count == 5)
            #expect(ids == ids.sorted(by: >))
            #expect(Set(ids).count == 5)
            let replay = all[1]
            #expect(replay.time == Fixture.t0 + 3)
            #expect(replay.subject == "u-alice" && replay.clientID == "kubernetes" && replay.actor == "")
            #expect(replay.success == false)
            #expect(replay.details == ["family": "f1"])
            let failure = all[3]
            #expect(failure.remoteAddress == "10.0.0.2")
            #expect(failure.details == ["reason": "invalid credentials"])
        }
    }

    @Test(arguments: Backends.all)
    func queriesFilterByTypeActorAndSubject(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await Self.seed(store)
            let logins = try await store.auditEvents(AuditQuery(type: "login.success"))
            #expect(logins.map(\.actor) == ["bob", "alice"])
            let alice = try await store.auditEvents(AuditQuery(actor: "alice"))
            #expect(alice.map(\.type) == ["token.issue", "login.success"])
            let aboutAlice = try await store.auditEvents(AuditQuery(subject: "u-alice"))
            #expect(aboutAlice.map(\.type) == ["token.replay", "token.issue", "login.success"])
            let combined = try await store.auditEvents(AuditQuery(type: "login.success", actor: "alice", subject: "u-alice"))
            #expect(combined.count == 1)
            #expect(try await store.auditEvents(AuditQuery(type: "no.such.type")).isEmpty)
        }
    }

    @Test(arguments: Backends.all)
    func pagesFollowEachOtherByBefore(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await Self.seed(store)
            let everything = try await store.auditEvents(AuditQuery())
            let page1 = try await store.auditEvents(AuditQuery(limit: 2))
            #expect(page1 == Array(everything[0..<2]))
            let page2 = try await store.auditEvents(AuditQuery(before: page1.last?.id, limit: 2))
            #expect(page2 == Array(everything[2..<4]))
            let page3 = try await store.auditEvents(AuditQuery(before: page2.last?.id, limit: 2))
            #expect(page3 == Array(everything[4...]))
            let page4 = try await store.auditEvents(AuditQuery(before: page3.last?.id, limit: 2))
            #expect(page4.isEmpty)
            // Pagination combines with filters.
            let filtered = try await store.auditEvents(AuditQuery(type: "login.success", before: everything[0].id, limit: 10))
            #expect(filtered.map(\.actor) == ["alice"])
        }
    }

    @Test(arguments: Backends.all)
    func sinceIsInclusiveAndUntilExclusive(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            try await Self.seed(store)  // one event a second, from t0 to t0 + 4
            let window = try await store.auditEvents(AuditQuery(since: Fixture.t0 + 1, until: Fixture.t0 + 3))
            #expect(window.map(\.time) == [Fixture.t0 + 2, Fixture.t0 + 1])
            #expect(try await store.auditEvents(AuditQuery(since: Fixture.t0 + 3)).map(\.type) == ["login.success", "token.replay"])
            #expect(try await store.auditEvents(AuditQuery(until: Fixture.t0 + 1)).map(\.type) == ["login.success"])
            #expect(try await store.auditEvents(AuditQuery(since: Fixture.t0 + 5)).isEmpty)
            #expect(try await store.auditEvents(AuditQuery(until: Fixture.t0)).isEmpty)
            #expect(try await store.auditEvents(AuditQuery(since: Fixture.t0 + 2, until: Fixture.t0 + 2)).isEmpty)
            // Combined with the other filters and with pagination.
            let logins = try await store.auditEvents(AuditQuery(type: "login.success", since: Fixture.t0 + 1))
            #expect(logins.map(\.actor) == ["bob"])
            let all = try await store.auditEvents(AuditQuery(since: Fixture.t0, until: Fixture.t0 + 5))
            #expect(all.count == 5)
            let page = try await store.auditEvents(AuditQuery(since: Fixture.t0 + 1, before: all[1].id, limit: 2))
            #expect(page.map(\.time) == [Fixture.t0 + 2, Fixture.t0 + 1])
        }
    }

    @Test(arguments: Backends.all)
    func eventTypesAreTheDistinctTypesSorted(_ backend: Backend) async throws {
        try await backend.withStore { store async throws in
            #expect(try await store.auditEventTypes().isEmpty)
            try await Self.seed(store)
            try await store.appendAudit(AuditEvent(time: Fixture.t0 + 5, type: "admin.user.add", actor: "cli"))
            try await store.appendAudit(AuditEvent(time: Fixture.t0 + 6, type: "Zeta.upper", actor: "cli"))
            #expect(try await store.auditEventTypes() == ["Zeta.upper", "admin.user.add", "login.failure", "login.success",
                                                          "token.issue", "token.replay"])
        }
    }
}
