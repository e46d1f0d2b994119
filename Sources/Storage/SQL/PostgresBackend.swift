import Foundation
import IdP
import Logging
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit
import CoreMetrics

/// PostgreSQL: the path past one machine. A pool of connections; every transaction on one
/// leased connection. Single use holds across replicas because the conditional UPDATEs take
/// row locks: a second redeemer waits for the first to commit, re-checks `used_at IS NULL`,
/// and finds nothing to update.
///
/// A dead database is a fast, clear failure: acquiring a connection is bounded by
/// `acquireTimeout` (PostgresNIO's pool would queue a request until its circuit breaker trips,
/// about a minute). Once the pool has failed, a watchdog probes the server every 250 ms with a
/// direct connection and, when it answers, replaces the pool with a fresh one — the old pool's
/// reconnect backoff grows to a minute, a fresh pool connects at once.
public final class PostgresBackend: SQLBackend, @unchecked Sendable {
    public let flavor = SQLFlavor.postgres
    let logger: Logger
    let options: Options
    let parsed: PostgresURL
    let clientTLS: PostgresClient.Configuration.TLS
    let probeTLS: PostgresConnection.Configuration.TLS

    let lock = NSLock()
    /// Deadlines of operations in flight (acquire, then operation timeout), watched by one task.
    let deadlines = DeadlineWatch()
    private var pools: PostgresPools
    private var generation = 0
    private var reviving = false
    /// When a connection was last handed out: a pool that is merely busy keeps doing that.
    private var lastAcquired = ContinuousClock.now
    /// The same for the refresh writer's pool (a failed writer is not excused by busy request pools).
    private var lastAcquiredWriting = ContinuousClock.now
    private var closed = false

    /// The pool is revived only once it has worked (a failed `open` just reports).
    private var opened = false

    public struct Options: Sendable {
        public var url: String
        public var poolSize: Int = 10
        /// CA for `sslmode=verify-full` (PEM file); system roots when nil.
        public var caFile: String?
        /// The longest a request waits for a connection (`database.acquire_timeout`).
        public var acquireTimeout: Duration = .seconds(3)
        /// The longest the statements of one operation may take once they have a connection, then
        /// the answer is `.unavailable` (the server: requests must answer; nil for the CLI, whose
        /// backup or migration may legitimately run long).
        public var operationTimeout: Duration?
        public init(url: String, poolSize: Int = 10, caFile: String? = nil, acquireTimeout: Duration = .seconds(3),
                    operationTimeout: Duration? = nil) {
            self.url = url; self.poolSize = poolSize; self.caFile = caFile; self.acquireTimeout = acquireTimeout
            self.operationTimeout = operationTimeout
        }
    }

    public static func open(_ options: Options, logger: Logger) async throws -> PostgresBackend {
        let parsed = try PostgresURL(options.url)
        let clientTLS: PostgresClient.Configuration.TLS, probeTLS: PostgresConnection.Configuration.TLS
        switch parsed.sslMode {
        case "disable": clientTLS = .disable; probeTLS = .disable
        case "prefer", "allow":
            let t = try tlsConfiguration(verify: false, caFile: options.caFile); clientTLS = .prefer(t); probeTLS = .prefer(try .init(configuration: t))
        case "require":
            let t = try tlsConfiguration(verify: false, caFile: options.caFile); clientTLS = .require(t); probeTLS = .require(try .init(configuration: t))
        case "verify-ca", "verify-full":
            let t = try tlsConfiguration(verify: true, caFile: options.caFile ?? parsed.rootCert); clientTLS = .require(t); probeTLS = .require(try .init(configuration: t))
        default: throw StorageURLError("unsupported sslmode '\(parsed.sslMode)' (use disable, prefer, require, verify-ca or verify-full)")
        }
        let backend = PostgresBackend(options: options, parsed: parsed, clientTLS: clientTLS, probeTLS: probeTLS, logger: logger)
        await backend.lock.withLock { backend.pools }.untilRunning()  // the pools' run() before the first lease
        do {
            try await backend.run { db in _ = try await db.raw("SELECT 1 AS one").first() }
        } catch {
            try? await backend.close()
            throw StorageError.unavailable("cannot connect to the database (PostgreSQL at \(parsed.where)): \(Self.describe(error))")
        }
        backend.lock.withLock { backend.opened = true }
        return backend
    }

    init(options: Options, parsed: PostgresURL, clientTLS: PostgresClient.Configuration.TLS, probeTLS: PostgresConnection.Configuration.TLS,
         logger: Logger) {
        self.options = options; self.parsed = parsed; self.clientTLS = clientTLS; self.probeTLS = probeTLS; self.logger = logger
        pools = Self.makePools(options: options, parsed: parsed, tls: clientTLS, logger: logger)
    }

    static func makePools(options: Options, parsed: PostgresURL, tls: PostgresClient.Configuration.TLS, logger: Logger) -> PostgresPools {
        var config = PostgresClient.Configuration(host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password,
                                                  database: parsed.database, tls: tls)
        config.options.connectTimeout = .seconds(5)
        config.options.keepAliveBehavior = nil
        return PostgresPools(configuration: config, size: max(1, options.poolSize), logger: logger)
    }

    /// Where refresh batches are written from, and where the writer's operations run: the event loop
    /// of the writer's own connections, so a batch's answer is acted on at once, by the thread that
    /// read it (see `PostgresPools.writer`).
    static let writerExecutor = LoopTaskExecutor(PostgresPools.writerGroup.next())

    /// A connection from the pool within `acquireTimeout`, or `.unavailable` naming the database.
    /// `writer`: from the refresh writer's pool, the operation running on `writerExecutor`.
    private func withLease<R: Sendable>(writer: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        let (pools, generation) = lock.withLock { (self.pools, self.generation) }
        let dedicated = writer ? pools.writer : nil
        let client = dedicated ?? pools.current
        let acquired = Flag()
        let timeout = options.acquireTimeout
        let operationTimeout = options.operationTimeout
        let lease = Lease()
        defer { lease.finish(deadlines) }
        do {
            // Not a task group: a group waits for every child on exit, and a pool that does not
            // honour cancellation (one being shut down, one in reconnect backoff) would hold the
            // request past the deadline. The operation runs on; only the answer is bounded — by
            // the shared deadline watch, not a timer task per operation.
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (cont: CheckedContinuation<R, any Error>) in
                    let once = Once()
                    // The task lets go of `body` before it answers: callers pass closures that must not
                    // outlive the call (`withoutActuallyEscaping` checks, and traps otherwise).
                    let job = Job(body)
                    let op = Task(executorPreference: dedicated == nil ? nil : Self.writerExecutor) {
                        let result: Result<R, any Error>
                        do {
                            result = .success(try await client.withConnection { conn in
                                acquired.set()
                                self.lock.withLock {
                                    if dedicated == nil { self.lastAcquired = ContinuousClock.now } else { self.lastAcquiredWriting = ContinuousClock.now }
                                }
                                return try await job.run(conn)
                            })
                        } catch {
                            result = .failure(error)
                        }
                        job.drop()
                        once.run { cont.resume(with: result) }
                    }
                    let extended = Flag()
                    let id = deadlines.add(at: .now + timeout) {
                        if !acquired.isSet { once.run { op.cancel(); cont.resume(throwing: AcquireTimeout()) }; return nil }
                        // Acquired: the statements get `operationTimeout` more, then the answer is a 503
                        // (a commit that lands later is found again by a retry: grace window, single use).
                        // Not cancelled: a transaction cut off mid-way could go back to the pool still open.
                        guard let limit = operationTimeout else { return nil }
                        if !extended.isSet { extended.set(); return .now + limit }
                        once.run { cont.resume(throwing: OperationTimeout()) }
                        return nil
                    }
                    lease.started(op, watch: id)
                }
            } onCancel: {
                lease.cancel()
            }
        } catch is OperationTimeout {
            Counter(label: "portal_storage_errors_total").increment()
            poolFailed(generation, writer: dedicated != nil)
            throw StorageError.unavailable("the database (PostgreSQL at \(parsed.where)) did not answer within \(options.operationTimeout ?? .zero)")
        } catch is AcquireTimeout {
            Counter(label: "portal_storage_errors_total").increment()
            poolFailed(generation, writer: dedicated != nil)
            throw StorageError.unavailable("no connection from the database (PostgreSQL at \(parsed.where)) within \(timeout)")
        } catch {
            if Self.isConnectionFailure(error) { poolFailed(generation, writer: dedicated != nil) }
            throw Self.translate(error)
        }
    }

    /// The pool of `generation` stopped producing connections: probe the server and, once it
    /// answers, start a fresh pool (unless another request already did).
    private func poolFailed(_ failed: Int, writer: Bool = false) {
        let start = lock.withLock { () -> Bool in
            guard failed == generation, !reviving, !closed, opened else { return false }
            // Connections were handed out within the last acquire timeout: busy, not dead.
            guard ContinuousClock.now - (writer ? lastAcquiredWriting : lastAcquired) > options.acquireTimeout else { return false }
            reviving = true
            return true
        }
        guard start else { return }
        logger.error("database unreachable; probing it until it answers", metadata: ["database": "\(parsed.where)"])
        Task { [self] in
            while !(lock.withLock { closed }) {
                if await probe() {
                    // A short outage: the pools may have reconnected by themselves meanwhile; keep them then
                    // (every one of them: a request uses its own event loop's pool, a refresh the writer's).
                    let current = lock.withLock { self.pools }
                    var allAnswer = true
                    for client in current.all where !(await Self.answers(client, within: .milliseconds(500), logger: logger)) {
                        allAnswer = false
                        break
                    }
                    if allAnswer {
                        lock.withLock { reviving = false }
                        logger.notice("database reachable again", metadata: ["database": "\(parsed.where)"])
                        return
                    }
                    let fresh = Self.makePools(options: options, parsed: parsed, tls: clientTLS, logger: logger)
                    await fresh.untilRunning()
                    let old = lock.withLock { () -> Task<Void, Never> in
                        let old = pools.runner
                        pools = fresh; generation += 1; reviving = false
                        return old
                    }
                    // Transactions still running on the old pool finish first (its statements are bounded).
                    Task { try? await Task.sleep(for: .seconds(30)); old.cancel() }
                    logger.notice("database reachable again; connection pool replaced", metadata: ["database": "\(parsed.where)"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// One direct connection and `SELECT 1`, bounded by a second.
    private func probe() async -> Bool {
        let config = PostgresConnection.Configuration(host: parsed.host, port: parsed.port, username: parsed.user, password: parsed.password,
                                                      database: parsed.database, tls: probeTLS)
        let logger = self.logger
        return await Self.trueWithin(.seconds(1), Task {
            guard let conn = try? await PostgresConnection.connect(configuration: config, id: 0, logger: logger) else { return false }
            let ok = (try? await conn.sql(queryLogLevel: .trace).raw("SELECT 1 AS one").first()) != nil
            try? await conn.close()
            return ok
        })
    }

    static func isConnectionFailure(_ error: any Error) -> Bool {
        if error is ConnectionPoolError { return true }
        if let e = error as? PSQLError { return e.serverInfo == nil }
        return false
    }

    /// Liveness of the database within `timeout` (for /readyz).
    public func ping(timeout: Duration) async -> Bool {
        await Self.answers(lock.withLock { self.pools.current }, within: timeout, logger: logger)
    }

    /// `SELECT 1` through `client` within `timeout`; never waits longer, whatever the pool does.
    static func answers(_ client: PostgresClient, within timeout: Duration, logger: Logger) async -> Bool {
        // The rows are read to the end: a connection handed back with an unread result would hang its next user.
        await trueWithin(timeout, Task { (try? await client.withConnection { conn in try await conn.sql(queryLogLevel: .trace).raw("SELECT 1 AS one").first() }) != nil })
    }

    /// `op`'s answer if it comes within `timeout`, else false (and `op` is cancelled). Never waits
    /// longer, even for an operation that ignores cancellation (unlike a task group, which would).
    static func trueWithin(_ timeout: Duration, _ op: Task<Bool, Never>) async -> Bool {
        await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
            let once = Once()
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if Task.isCancelled { return }   // cancelled because `op` answered first
                once.run { op.cancel(); cont.resume(returning: false) }
            }
            Task {
                let ok = await op.value
                timer.cancel()
                once.run { cont.resume(returning: ok) }
            }
        }
    }

    static func tlsConfiguration(verify: Bool, caFile: String?) throws -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        c.minimumTLSVersion = .tlsv12
        if verify {
            c.certificateVerification = .fullVerification
            if let caFile { c.trustRoots = .file(caFile) }
        } else {
            c.certificateVerification = .none
        }
        return c
    }

    /// Rolled back whole and run again when PostgreSQL picks it as a deadlock's victim (`retryingWhenPostgresAsks`).
    public func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await retryingWhenPostgresAsks { try await withLease { conn in try await inTransaction(FastPostgresDatabase(conn), body) } }
    }

    public func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withLease { conn in try await body(FastPostgresDatabase(conn)) }
    }

    /// `run` for refresh batches: the writer's own connections and thread.
    func runWriting<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withLease(writer: true) { conn in try await body(FastPostgresDatabase(conn)) }
    }

    public func close() async throws {
        let r = lock.withLock { closed = true; return pools.runner }
        r.cancel()
    }

    /// Unique violations become `.conflict`; everything else from the server or the network is `.unavailable`.
    static func translate(_ error: any Error) -> any Error {
        if error is StorageError || error is CallerError { return error }
        if error is ConnectionPoolError {
            Counter(label: "portal_storage_errors_total").increment()
            return StorageError.unavailable("the database connection pool failed: \(error)")
        }
        if let e = error as? PSQLError {
            if e.serverInfo?[.sqlState] != "23505" { Counter(label: "portal_storage_errors_total").increment() }
            if e.serverInfo?[.sqlState] == "23505" { return StorageError.conflict(e.serverInfo?[.message] ?? "unique violation") }
            return StorageError.unavailable(describe(e))
        }
        return error
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? StorageError { return e.message }
        if let e = error as? PSQLError {
            if let info = e.serverInfo { return "\(info[.sqlState] ?? "") \(info[.message] ?? "")" }
            return "\(e.code)"
        }
        return String(describing: error)
    }
}

struct StorageURLError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]
struct PostgresURL {
    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String?
    var sslMode: String
    var rootCert: String?

    init(_ url: String) throws {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql", let host = c.host, !host.isEmpty else {
            throw StorageURLError("database.url must look like postgres://user:password@host:5432/database")
        }
        self.host = host
        port = c.port ?? 5432
        user = c.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = c.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? nil : path
        let q = Dictionary((c.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        sslMode = q["sslmode"] ?? (["localhost", "127.0.0.1", "::1"].contains(host) ? "disable" : "verify-full")
        rootCert = q["sslrootcert"]
    }

    /// host:port/database, for messages (never the password).
    var `where`: String { "\(host):\(port)/\(database ?? "")" }
}

struct AcquireTimeout: Error {}
struct OperationTimeout: Error {}

/// An operation's closure, held until it has run.
final class Job<R: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var body: (@Sendable (PostgresConnection) async throws -> R)?
    init(_ body: @escaping @Sendable (PostgresConnection) async throws -> R) { self.body = body }

    func run(_ conn: PostgresConnection) async throws -> R {
        guard let body = lock.withLock({ self.body }) else { throw CancellationError() }
        return try await body(conn)
    }

    func drop() { lock.withLock { body = nil } }
}

/// One operation's task and deadline, for cancellation and clean-up.
final class Lease: @unchecked Sendable {
    private let lock = NSLock()
    private var op: Task<Void, Never>?
    private var watch: Int?
    private var cancelled = false

    func started(_ op: Task<Void, Never>, watch id: Int) {
        let cancel = lock.withLock { () -> Bool in
            self.op = op; watch = id
            return cancelled
        }
        if cancel { op.cancel() }
    }

    func cancel() {
        let op = lock.withLock { () -> Task<Void, Never>? in
            cancelled = true
            return self.op
        }
        op?.cancel()
    }

    func finish(_ deadlines: DeadlineWatch) {
        if let id = lock.withLock({ watch }) { deadlines.remove(id) }
    }
}

/// Runs its body at most once, whoever calls first.
final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func run(_ body: () -> Void) {
        let first = lock.withLock { () -> Bool in
            if done { return false }
            done = true
            return true
        }
        if first { body() }
    }
}

/// Set once, read from another task.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
