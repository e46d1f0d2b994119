import Foundation
import IdP
import Logging
import PostgresNIO
import SQLKit

extension SQLStorage {
    /// The number `change_epochs.credentials` holds: it moves with every change a credential check reads.
    public func credentialEpoch() async throws -> Int {
        try await read { db in
            try await db.raw("SELECT epoch FROM change_epochs WHERE name = 'credentials'").first()?.i("epoch") ?? 0
        }
    }

    /// How this replica follows credential changes: on SQLite by reading the epoch at most every
    /// `SQLiteCredentialChanges.window` (the CLI writes from another process) plus this process's own
    /// writes at once; on PostgreSQL by LISTEN on a connection of its own (no round trip per check;
    /// nothing is served from memory while that connection is down).
    public func credentialChanges(logger: Logger) -> any CredentialChanges {
        if let pg = backend as? PostgresBackend { return PostgresCredentialChanges.start(pg, local: credentialWrites, logger: logger) }
        return SQLiteCredentialChanges(storage: self, local: credentialWrites)
    }
}

/// SQLite: one process serves, but the CLI writes from another, so the epoch is read from the
/// database — not per check (that read, a hop to the database thread and back, held TokenReview at
/// ≈ 7,600/s) but at most once per `window`: a check uses an epoch whose read *began* no more than
/// `window` before the check, so a change committed by another process is seen by every check that
/// starts `window` after its commit. Concurrent checks share one read in flight. This process's own
/// writes move the local counter right after their commit, so they count at once.
final class SQLiteCredentialChanges: CredentialChanges, @unchecked Sendable {
    static let window: Duration = .milliseconds(2)
    let storage: SQLStorage
    let local: ChangeCounter
    private let lock = NSLock()
    /// The last epoch read and when its read began.
    private var last: (epoch: Int, began: ContinuousClock.Instant)?
    /// The read in flight and when it began.
    private var pending: (read: Task<Int?, Never>, began: ContinuousClock.Instant)?

    init(storage: SQLStorage, local: ChangeCounter) {
        self.storage = storage
        self.local = local
    }

    func credentialGeneration() async -> Int? {
        let mine = local.value
        let now = ContinuousClock.now
        enum Step { case known(Int), wait(Task<Int?, Never>, ContinuousClock.Instant) }
        let step: Step = lock.withLock {
            if let last, now - last.began <= Self.window { return .known(last.epoch) }
            if let pending, now - pending.began <= Self.window { return .wait(pending.read, pending.began) }
            let storage = self.storage
            let read = Task<Int?, Never> { try? await storage.credentialEpoch() }
            pending = (read, now)
            return .wait(read, now)
        }
        switch step {
        case .known(let epoch):
            return epoch &+ mine
        case .wait(let read, let began):
            // A failed read gives no generation: nothing is served from memory.
            guard let epoch = await read.value else { return nil }
            lock.withLock {
                if last.map({ $0.began < began }) ?? true { last = (epoch, began) }
                if pending?.began == began { pending = nil }
            }
            return epoch &+ mine
        }
    }
}

/// LISTEN `portal_credentials` on a dedicated connection. Every notification, and every (re)connection,
/// moves the generation; while the connection is down there is no generation, so the cache is bypassed
/// (and emptied when it comes back): a lost NOTIFY can never leave a stale answer in memory.
final class PostgresCredentialChanges: CredentialChanges, @unchecked Sendable {
    static let channel = "portal_credentials"
    private let lock = NSLock()
    private var generation = 0
    private var listening = false
    private var task: Task<Void, Never>?
    /// This replica's own writes (both numbers only grow: their sum moves when either does).
    private var local = ChangeCounter()

    func credentialGeneration() async -> Int? {
        let mine = local.value
        return lock.withLock { listening ? generation &+ mine : nil }
    }

    private func set(listening value: Bool) { lock.withLock { listening = value; generation &+= 1 } }
    private func moved() { lock.withLock { generation &+= 1 } }

    static func start(_ backend: PostgresBackend, local: ChangeCounter, logger: Logger) -> PostgresCredentialChanges {
        let feed = PostgresCredentialChanges()
        feed.local = local
        let config = PostgresConnection.Configuration(host: backend.parsed.host, port: backend.parsed.port, username: backend.parsed.user,
                                                      password: backend.parsed.password, database: backend.parsed.database, tls: backend.probeTLS)
        feed.task = Task { await feed.follow(config, logger: logger) }
        return feed
    }

    func stop() { lock.withLock { task }?.cancel() }

    private func follow(_ config: PostgresConnection.Configuration, logger: Logger) async {
        var delay: Duration = .milliseconds(250)
        var id = 1
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(configuration: config, id: id, logger: logger)
                id += 1
                defer { Task { try? await connection.close() } }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await connection.listen(on: Self.channel) { notifications in
                            self.set(listening: true)
                            logger.debug("following credential changes (LISTEN \(Self.channel))")
                            for try await _ in notifications { self.moved() }
                        }
                    }
                    // A connection that died without a word (a network partition) is found within seconds.
                    group.addTask {
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(5))
                            guard await PostgresBackend.trueWithin(.seconds(3), Task {
                                (try? await connection.query("SELECT 1", logger: logger)) != nil
                            }) else { throw CancellationError() }
                        }
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
                delay = .milliseconds(250)
            } catch {
                if Task.isCancelled { break }
                logger.warning("not following credential changes: the TokenReview cache is bypassed until the connection is back",
                               metadata: ["error": "\(String(describing: error).prefix(300))"])
            }
            set(listening: false)
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
        set(listening: false)
    }
}

/// A number that only grows: one per local change.
final class ChangeCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n &+= 1 } }
    var value: Int { lock.withLock { n } }
}

extension SQLStorage {
    /// Runs a write a credential check reads, then moves the local change counter (after the commit,
    /// so no check can cache what it read before the change under the generation after it).
    func changingCredentials<R>(_ op: () async throws -> R) async rethrows -> R {
        defer { credentialWrites.bump() }
        return try await op()
    }
}
