import CSQLite3
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SQLKit

/// The embedded default: one SQLite file in WAL mode and one connection, statements serialized
/// by an async lock, against the system SQLite with prepared statements cached. A refresh is a
/// handful of microsecond-long statements: a thread-pool hop per statement (three context switches
/// each) used to cost more than the work. Reads run on the calling thread; write transactions run
/// whole on one writer thread (one hop there and back per transaction), so the lock holder never
/// waits in an event loop's queue behind other requests' HTTP and signing work.
///
/// Other processes (the CLI) may use the same file at the same time. Instead of sleeping in
/// SQLite's busy handler on a shared thread, a statement that finds the file locked gives up
/// after a few milliseconds and is retried after an async sleep, for up to ten seconds.
public final class SQLiteBackend: SQLBackend {
    public let flavor = SQLFlavor.sqlite
    let connection: SQLiteHandle
    let lock = AsyncLock()
    public let path: String
    /// Write transactions run here, one after the other (see `WriterThread`).
    static let writer = WriterThread(name: "sqlite-writer")

    let checkpointer: WALCheckpointer?
    /// Read-only connections beside the writer (WAL lets readers run while a write commits), so
    /// lookups neither queue behind write transactions nor behind each other.
    let readers: [(handle: SQLiteHandle, lock: AsyncLock)]
    static let readerCount = 2

    /// `serving`: the long-running server. It moves WAL pages into the database file (and fsyncs)
    /// on a thread of its own, so no request ever waits for a checkpoint, and reads on separate
    /// connections. Short-lived CLI processes use one connection and let SQLite checkpoint as usual.
    public static func open(path: String, logger: Logger, serving: Bool = false) async throws -> SQLiteBackend {
        try await open(path: path, logger: logger, serving: serving,
                       checkpointer: serving ? WALCheckpointer(path: path, logger: logger) : nil)
    }

    static func open(path: String, logger: Logger, serving: Bool, checkpointer: WALCheckpointer?) async throws -> SQLiteBackend {
        let handle = try SQLiteHandle(path: path, logger: logger)
        let readers = serving ? try (0..<readerCount).map { _ in try SQLiteHandle(path: path, logger: logger) } : []
        let backend = SQLiteBackend(connection: handle, path: path, checkpointer: checkpointer, readers: readers)
        try await backend.run { db in
            _ = try await db.raw("PRAGMA journal_mode=WAL").all()
            try await db.raw("PRAGMA synchronous=NORMAL").run()
            try await db.raw("PRAGMA foreign_keys=ON").run()
            // Keep a checkpointed WAL file from staying at its high-water mark.
            _ = try await db.raw("PRAGMA journal_size_limit=67108864").all()
            if serving { _ = try await db.raw("PRAGMA wal_autocheckpoint=0").all() }
        }
        if let checkpointer = backend.checkpointer {
            let writer = backend.connection
            // After `wal_autocheckpoint=0`, which would replace it.
            try await backend.run { _ in writer.hook(checkpointer) }
            checkpointer.catchUp = { [weak backend] in
                _ = try? await backend?.writing { writer.checkpoint() }
            }
        }
        for r in backend.readers {
            let db = r.handle.database
            try await r.lock.withLock {
                try await db.raw("PRAGMA query_only=1").run()
                try await db.raw("PRAGMA foreign_keys=ON").run()
            }
        }
        backend.checkpointer?.start()
        return backend
    }

    init(connection: SQLiteHandle, path: String, checkpointer: WALCheckpointer? = nil, readers: [SQLiteHandle] = []) {
        self.connection = connection
        self.path = path
        self.checkpointer = checkpointer
        self.readers = readers.map { ($0, AsyncLock()) }
    }

    public func read<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        guard !readers.isEmpty else { return try await run(body) }
        // A free reader if there is one; else wait for one picked at random.
        if let free = readers.first(where: { $0.lock.tryLock() }) {
            let db = free.handle.database
            return try await free.lock.whileHeld { try await body(db) }
        }
        let r = readers[Int.random(in: 0..<readers.count)]
        let db = r.handle.database
        return try await r.lock.withLock { try await body(db) }
    }

    public func transaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let db = connection.database
        // IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading.
        return try await writing { try await inTransaction(db, begin: "BEGIN IMMEDIATE", body) }
    }

    public func run<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let db = connection.database
        return try await writing { try await body(db) }
    }

    /// `body` on the writer thread, holding the connection's lock.
    func writing<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        try await withTaskExecutorPreference(Self.writer) { try await lock.withLock(body) }
    }

    public func close() async throws {
        if let checkpointer {
            // Its thread may be waiting for the writer to finish a pass (`catchUp`: a task that may be
            // queued on the very thread calling close, an event loop). Stopped from a thread of its own
            // and awaited, so this thread stays free to run it; blocked here, shutdown hung for good.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread { checkpointer.stop(); done.resume() }.start()
            }
        }
        for r in readers {
            let h = r.handle
            try await r.lock.withLock { h.close() }
        }
        let c = connection
        try await lock.withLock { c.close() }
    }
}

/// An error from SQLite, with its result code and message ("UNIQUE constraint failed: …").
public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
}

/// One sqlite3 connection and its prepared statements. Used by one task at a time (the
/// backend's lock), possibly from different threads over time, which SQLite's multi-thread
/// mode allows.
final class SQLiteHandle: @unchecked Sendable {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    /// Result column names of each cached statement, looked up by name without a linear search.
    private var columnIndexes: [OpaquePointer: ColumnIndex] = [:]
    let logger: Logger
    /// How long one attempt waits inside SQLite for another process's lock.
    static let busyAttemptMilliseconds: Int32 = 5
    /// How long a statement keeps retrying a locked database before failing.
    static let busyDeadline: TimeInterval = 10
    static let maxCachedStatements = 256

    /// Process-wide SQLite settings, applied before the first connection initializes SQLite.
    static let configured: Int32 = csqlite3_config_no_pagecache_bulk()

    init(path: String, logger: Logger) throws {
        self.logger = logger
        _ = Self.configured
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(code: rc, message: "\(message) (\(path))")
        }
        sqlite3_busy_timeout(handle, Self.busyAttemptMilliseconds)
        sqlite3_extended_result_codes(handle, 1)
        db = handle
    }

    deinit { close() }

    var database: SQLiteDatabase { SQLiteDatabase(handle: self, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.any()) }

    /// Reports the WAL's growth after each commit to `checkpointer` (which must outlive this connection).
    func hook(_ checkpointer: WALCheckpointer) {
        if let db { checkpointer.hook(db) }
    }

    /// A PASSIVE checkpoint on this connection (the writer finishing a background pass).
    func checkpoint() {
        if let db { _ = WALCheckpointer.passive(db) }
    }

    func close() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements = [:]
        columnIndexes = [:]
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    private func error(_ rc: Int32, _ sql: String? = nil) -> SQLiteError {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "connection closed"
        return SQLiteError(code: rc, message: message)
    }

    /// Runs `sql` (one statement, or several without binds) and hands each result row to `onRow`.
    func execute(_ sql: String, binds: [any Encodable & Sendable], onRow: (SQLiteRow) -> Void) async throws {
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "connection closed") }
        let deadline = Date().addingTimeInterval(Self.busyDeadline)
        var remaining = Substring(sql)
        var first = true
        while true {
            let (stmt, cached, tail) = try prepare(db, remaining, cacheable: first)
            defer {
                if cached { sqlite3_reset(stmt); sqlite3_clear_bindings(stmt) } else { sqlite3_finalize(stmt) }
            }
            if first {
                try bind(stmt, binds)
            } else if !binds.isEmpty {
                throw SQLiteError(code: SQLITE_MISUSE, message: "binds are only allowed for a single statement")
            }
            var delivered = false
            var columns: ColumnIndex?
            while true {
                let rc = sqlite3_step(stmt)
                if rc == SQLITE_ROW {
                    delivered = true
                    let index = columns ?? columnIndex(stmt, cached: cached)
                    columns = index
                    onRow(SQLiteRow(columns: index, values: (0..<Int32(index.names.count)).map { SQLiteValue(stmt, $0) }))
                    continue
                }
                if rc == SQLITE_DONE { break }
                let primary = rc & 0xff
                // Locked by another process: retry later unless rows were already handed out or a
                // transaction of ours is open (then the caller rolls back and sees the error).
                if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED), !delivered, Date() < deadline,
                   sqlite3_get_autocommit(db) != 0 {
                    sqlite3_reset(stmt)
                    try await Task.sleep(nanoseconds: 5_000_000)
                    continue
                }
                throw error(rc)
            }
            first = false
            let rest = tail.drop { $0.isWhitespace || $0 == ";" }
            if rest.isEmpty { return }
            remaining = rest
        }
    }

    /// `body` with the cached prepared statement for `sql` (a single statement), reset and its binds
    /// cleared afterwards: for callers that bind and step it themselves (`SQLiteHandle.rotate`).
    func withStatement<R>(_ sql: String, _ body: (OpaquePointer) throws -> R) throws -> R {
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "connection closed") }
        let (stmt, cached, _) = try prepare(db, Substring(sql), cacheable: true)
        defer { if cached { sqlite3_reset(stmt); sqlite3_clear_bindings(stmt) } else { sqlite3_finalize(stmt) } }
        return try body(stmt)
    }

    /// The connection's error for result code `rc`.
    func failure(_ rc: Int32) -> SQLiteError { error(rc) }

    private func columnIndex(_ stmt: OpaquePointer, cached: Bool) -> ColumnIndex {
        let count = sqlite3_column_count(stmt)
        if cached, let known = columnIndexes[stmt], known.names.count == Int(count) { return known }
        let index = ColumnIndex((0..<count).map { String(cString: sqlite3_column_name(stmt, $0)) })
        if cached { columnIndexes[stmt] = index }
        return index
    }

    /// A prepared statement: from the cache for a single-statement SQL text, else compiled once.
    private func prepare(_ db: OpaquePointer, _ sql: Substring, cacheable: Bool) throws -> (OpaquePointer, cached: Bool, tail: Substring) {
        let key = String(sql)
        if cacheable, let s = statements[key] { return (s, true, "") }
        var stmt: OpaquePointer?
        var tailOffset = 0
        let rc = key.withCString { base -> Int32 in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v3(db, base, -1, cacheable ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0, &stmt, &tail)
            if let tail { tailOffset = base.distance(to: tail) }
            return rc
        }
        guard rc == SQLITE_OK, let stmt else { throw error(rc) }
        let tail = Substring(key.utf8.dropFirst(tailOffset))
        let single = tail.allSatisfy { $0.isWhitespace || $0 == ";" }
        if cacheable && single {
            if statements.count >= Self.maxCachedStatements {
                for (_, s) in statements { sqlite3_finalize(s) }
                statements = [:]
                columnIndexes = [:]
            }
            statements[key] = stmt
            return (stmt, true, "")
        }
        return (stmt, false, tail)
    }

    private func bind(_ stmt: OpaquePointer, _ binds: [any Encodable & Sendable]) throws {
        for (i, value) in binds.enumerated() {
            let rc = try Self.bind(stmt, Int32(i + 1), value)
            guard rc == SQLITE_OK else { throw error(rc) }
        }
    }

    private static func bind(_ stmt: OpaquePointer, _ i: Int32, _ value: any Encodable) throws -> Int32 {
        switch value {
        // The explicit byte length binds the whole string: with -1 SQLite would stop at an embedded NUL.
        case let v as String: return sqlite3_bind_text(stmt, i, v, Int32(v.utf8.count), csqlite3_transient())
        case let v as Int: return sqlite3_bind_int64(stmt, i, Int64(v))
        case let v as Int64: return sqlite3_bind_int64(stmt, i, v)
        case let v as Int32: return sqlite3_bind_int64(stmt, i, Int64(v))
        case let v as Bool: return sqlite3_bind_int64(stmt, i, v ? 1 : 0)
        case let v as Double: return sqlite3_bind_double(stmt, i, v)
        case let v as Data: return v.withUnsafeBytes { sqlite3_bind_blob(stmt, i, $0.baseAddress, Int32($0.count), csqlite3_transient()) }
        case let v as [UInt8]: return v.withUnsafeBytes { sqlite3_bind_blob(stmt, i, $0.baseAddress, Int32($0.count), csqlite3_transient()) }
        case let v as any OptionalBind:
            guard let wrapped = v.wrappedEncodable else { return sqlite3_bind_null(stmt, i) }
            return try bind(stmt, i, wrapped)
        default:
            throw SQLiteError(code: SQLITE_MISMATCH, message: "cannot bind a value of type \(type(of: value))")
        }
    }
}

protocol OptionalBind { var wrappedEncodable: (any Encodable)? { get } }
extension Optional: OptionalBind where Wrapped: Encodable {
    var wrappedEncodable: (any Encodable)? { self.map { $0 } }
}

enum SQLiteValue: Sendable, Equatable {
    case integer(Int64), float(Double), text(String), blob([UInt8]), null

    init(_ stmt: OpaquePointer, _ i: Int32) {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_INTEGER: self = .integer(sqlite3_column_int64(stmt, i))
        case SQLITE_FLOAT: self = .float(sqlite3_column_double(stmt, i))
        case SQLITE_TEXT:
            let n = Int(sqlite3_column_bytes(stmt, i))
            if let p = sqlite3_column_text(stmt, i) {
                self = .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
            } else {
                self = .text("")
            }
        case SQLITE_BLOB:
            let n = Int(sqlite3_column_bytes(stmt, i))
            if let p = sqlite3_column_blob(stmt, i) {
                self = .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
            } else {
                self = .blob([])
            }
        default: self = .null
        }
    }

    func decode<D: Decodable>(as type: D.Type, column: String) throws -> D {
        if let optional = D.self as? any OptionalDecode.Type {
            return try optional.decodeOptional(self, column: column) as! D
        }
        func mismatch() -> SQLiteError {
            SQLiteError(code: SQLITE_MISMATCH, message: "column \(column): cannot decode \(self) as \(D.self)")
        }
        switch self {
        case .integer(let v):
            if D.self == Int.self { return Int(v) as! D }
            if D.self == Int64.self { return v as! D }
            if D.self == Int32.self, let n = Int32(exactly: v) { return n as! D }
            if D.self == Bool.self { return (v != 0) as! D }
            if D.self == Double.self { return Double(v) as! D }
        case .float(let v):
            if D.self == Double.self { return v as! D }
        case .text(let s):
            if D.self == String.self { return s as! D }
        case .blob(let b):
            if D.self == Data.self { return Data(b) as! D }
            if D.self == [UInt8].self { return b as! D }
        case .null:
            break
        }
        throw mismatch()
    }
}

protocol OptionalDecode { static func decodeOptional(_ v: SQLiteValue, column: String) throws -> Self }
extension Optional: OptionalDecode where Wrapped: Decodable {
    static func decodeOptional(_ v: SQLiteValue, column: String) throws -> Self {
        if v == .null { return nil }
        return .some(try v.decode(as: Wrapped.self, column: column))
    }
}

final class ColumnIndex: Sendable {
    let names: [String]
    let positions: [String: Int]
    init(_ names: [String]) {
        self.names = names
        var p: [String: Int] = [:]
        for (i, n) in names.enumerated() where p[n] == nil { p[n] = i }
        positions = p
    }
}

struct SQLiteRow: SQLRow {
    let columns: ColumnIndex
    let values: [SQLiteValue]

    var allColumns: [String] { columns.names }
    func contains(column: String) -> Bool { columns.positions[column] != nil }

    private func value(_ column: String) throws -> SQLiteValue {
        guard let i = columns.positions[column] else {
            throw SQLiteError(code: SQLITE_MISMATCH, message: "no column \(column) in the result")
        }
        return values[i]
    }

    func decodeNil(column: String) throws -> Bool { try value(column) == .null }
    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D { try value(column).decode(as: D.self, column: column) }
}

/// SQLKit's view of the connection.
struct SQLiteDatabase: SQLDatabase {
    let handle: SQLiteHandle
    let logger: Logger
    let eventLoop: any EventLoop
    var dialect: any SQLDialect { SQLite3Dialect() }
    var queryLogLevel: Logger.Level? { .trace }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        let (sql, binds) = serialize(query)
        try await handle.execute(sql, binds: binds) { onRow($0) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        promise.completeWithTask { try await self.execute(sql: query, onRow) }
        return promise.futureResult
    }
}

/// SQLite's SQL as SQLKit writes it (the system library is ≥ 3.35: RETURNING and UPSERT).
struct SQLite3Dialect: SQLDialect {
    var name: String { "sqlite" }
    var identifierQuote: any SQLExpression { SQLRaw(#"""#) }
    var literalStringQuote: any SQLExpression { SQLRaw("'") }
    func bindPlaceholder(at position: Int) -> any SQLExpression { SQLRaw("?\(position)") }
    func literalBoolean(_ value: Bool) -> any SQLExpression { SQLRaw(value ? "TRUE" : "FALSE") }
    var literalDefault: any SQLExpression { SQLLiteral.null }
    var supportsIfExists: Bool { true }
    var supportsDropBehavior: Bool { false }
    var supportsAutoIncrement: Bool { false }
    var autoIncrementClause: any SQLExpression { SQLRaw("AUTOINCREMENT") }
    var enumSyntax: SQLEnumSyntax { .unsupported }
    var alterTableSyntax: SQLAlterTableSyntax { .init(allowsBatch: false) }
    var upsertSyntax: SQLUpsertSyntax { .standard }
    var supportsReturning: Bool { true }
    var unionFeatures: SQLUnionFeatures { [.union, .unionAll, .intersect, .except] }
    func customDataType(for dataType: SQLDataType) -> (any SQLExpression)? {
        if case .bigint = dataType { return SQLDataType.int }
        return nil
    }
}
