import Foundation
import IdP
import SQLKit
@testable import Storage
import Testing

/// PostgreSQL breaks a deadlock by rolling one transaction back (40P01), and the documented answer
/// is to run it again. A refresh batch stamping families while an admin revokes every family of a
/// person can lock the same rows in opposite orders: the loser must not become a 503 — least of all
/// the revocation.
@Suite("PostgreSQL deadlock victims are run again")
struct PostgresDeadlockTests {
    static var url: String? {
        ProcessInfo.processInfo.environment["PORTAL_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    @Test(.enabled(if: url != nil)) func aTransactionPostgreSQLChoseAsADeadlockVictimIsRunAgainAndCommits() async throws {
        try await Backends.postgres(Self.url!, poolSize: 10).withEmptyDatabase { backend in
            try await backend.run { db in try await db.raw("CREATE TABLE rows (id int PRIMARY KEY, v int NOT NULL)").run() }
            try await backend.run { db in try await db.raw("INSERT INTO rows VALUES (1, 0), (2, 0)").run() }
            let attempts = Counter()
            // The other transaction: holds row 2, then (once ours waits for row 2) asks for row 1.
            let (other, oursWaits) = try await Self.holdThenAsk(backend, holding: "UPDATE rows SET v = v + 1 WHERE id = 2",
                                                                  then: "UPDATE rows SET v = v + 1 WHERE id = 1")
            let ours = Task {
                try await backend.transaction { db in
                    let n = attempts.next()
                    try await db.raw("SET LOCAL deadlock_timeout = '200ms'").run()
                    try await db.raw("UPDATE rows SET v = v + 10 WHERE id = 1").run()
                    if n == 1 {
                        Task { try await Task.sleep(for: .milliseconds(100)); oursWaits() }
                    }
                    try await db.raw("UPDATE rows SET v = v + 10 WHERE id = 2").run()
                }
            }
            try await ours.value
            try await other.value
            #expect(attempts.value == 2, "rolled back once as the deadlock's victim, then committed")
            let rows = try await backend.run { db in
                try await db.raw("SELECT id, v FROM rows ORDER BY id").all().map { (try $0.decode(column: "id", as: Int.self), try $0.decode(column: "v", as: Int.self)) }
            }
            #expect(rows.map(\.1) == [11, 11], "each transaction's updates applied exactly once")
        }
    }

    /// The case this is for: revoking every family of a person while a refresh batch (here another
    /// transaction standing in for it) holds one of them and asks for another.
    @Test(.enabled(if: url != nil)) func revokingAPersonsFamiliesIsRunAgainWhenPostgreSQLPicksItAsADeadlocksVictim() async throws {
        try await Backends.postgres(Self.url!, poolSize: 10).withEmptyDatabase { backend in
            let store = try await SQLStorage.open(backend, now: Fixture.t0)
            // Ids, insertion and creation times in one order, so any plan the revocation gets locks `first` first.
            let first = Fixture.family(id: "family-a", userID: "alice", at: Fixture.t0)
            let second = Fixture.family(id: "family-b", userID: "alice", at: Fixture.t0 + 1)
            for f in [first, second] { try await store.startFamily(f, firstToken: Fixture.token(familyID: f.id, at: f.createdAt)) }
            // Holds the second family, then — once the revocation holds the first and waits for the
            // second — stamps the first (as a batch does).
            let (other, revocationWaits) = try await Self.holdThenAsk(
                backend, holding: "UPDATE refresh_families SET last_used_at = last_used_at WHERE id = \(bind: second.id)",
                then: "UPDATE refresh_families SET last_used_at = last_used_at WHERE id = \(bind: first.id)")
            let revocation = Task { try await store.revokeFamilies(userID: "alice", now: Fixture.t0 + 60, reason: "account disabled") }
            try await Task.sleep(for: .milliseconds(300))   // the revocation holds the first family and waits for the second
            revocationWaits()
            try await other.value
            #expect(try await revocation.value == 2, "both families revoked, no 503")
            #expect(try await store.family(id: first.id)?.revokeReason == "account disabled")
            #expect(try await store.family(id: second.id)?.revokeReason == "account disabled")
        }
    }

    /// Starts a transaction that runs `holding`, returns once it has, and runs `then` when the returned
    /// function is called. It waits 30 s before looking for a deadlock, so PostgreSQL picks the other
    /// side — the one under test — as the victim.
    static func holdThenAsk(_ backend: any SQLBackend, holding: SQLQueryString, then: SQLQueryString) async throws
        -> (Task<Void, any Error>, @Sendable () -> Void) {
        let (held, hold) = AsyncStream.makeStream(of: Void.self)
        let (asked, ask) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            try await backend.transaction { db in
                try await db.raw("SET LOCAL deadlock_timeout = '30s'").run()
                try await db.raw(holding).run()
                hold.yield()
                for await _ in asked { break }
                try await db.raw(then).run()
            }
        }
        for await _ in held { break }
        return (task, { ask.yield() })
    }

    @Test func onlyDeadlocksAndSerializationFailuresAreRunAgain() {
        #expect(StorageError.unavailable("40P01 deadlock detected").postgresAsksForARetry)
        #expect(StorageError.unavailable("40001 could not serialize access due to concurrent update").postgresAsksForARetry)
        #expect(!StorageError.unavailable("57P01 terminating connection due to administrator command").postgresAsksForARetry)
        #expect(!StorageError.conflict("23505 duplicate key").postgresAsksForARetry)
        #expect(!StorageError.unavailable("no connection from the database within 5 s").postgresAsksForARetry)
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
