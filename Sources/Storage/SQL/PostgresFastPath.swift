import Foundation
import Logging
import NIOCore
import PostgresKit
import PostgresNIO
import SQLKit

/// PostgresKit's `SQLDatabase`, minus its Codable round trips for the value types this storage uses.
///
/// PostgresKit encodes every bind and decodes every column through `PostgresDataTranslation`, a
/// Codable bridge: a refresh's joined read decodes 21 columns that way, and with the runtime's
/// generic-metadata lookups it was ≈ 4 % of the portal's CPU per refresh on PostgreSQL (profile in
/// docs/performance.md). Here strings, integers, doubles and their optionals go straight through
/// PostgresNIO's own codecs — the same wire types PostgresKit picks for them (text, int8, float8,
/// NULL) — and anything else takes PostgresKit's path unchanged: a statement with any other bind
/// runs on PostgresKit's database, a column asked for as any other type is decoded by PostgresKit.
struct FastPostgresDatabase: SQLDatabase {
    let connection: PostgresConnection
    let slow: any SQLDatabase

    init(_ connection: PostgresConnection) {
        self.connection = connection
        slow = connection.sql(queryLogLevel: .trace)
    }

    var logger: Logger { connection.logger }
    var eventLoop: any EventLoop { connection.eventLoop }
    var dialect: any SQLDialect { slow.dialect }
    var queryLogLevel: Logger.Level? { .trace }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        slow.execute(sql: query, onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        let (sql, binds) = serialize(query)
        guard let bindings = Self.bindings(binds) else { return try await slow.execute(sql: query, onRow) }
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
        for try await row in rows { onRow(FastPostgresRow(row: row, columns: row.makeRandomAccess())) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await closure(self)
    }

    /// The binds in PostgresNIO's encoding, or nil when one is of a type left to PostgresKit.
    static func bindings(_ binds: [any Encodable & Sendable]) -> PostgresBindings? {
        var out = PostgresBindings(capacity: binds.count)
        for bind in binds {
            guard append(bind, to: &out) else { return nil }
        }
        return out
    }

    static func append(_ bind: any Encodable, to out: inout PostgresBindings) -> Bool {
        switch bind {
        case let v as String: out.append(v)
        case let v as Int: out.append(v)
        case let v as Int64: out.append(v)
        case let v as Double: out.append(v)
        case let v as any OptionalBind:
            // An empty optional of any type is NULL, as PostgresKit binds it.
            guard let wrapped = v.wrappedEncodable else { out.appendNull(); return true }
            return append(wrapped, to: &out)
        default: return false
        }
        return true
    }
}

struct FastPostgresRow: SQLRow {
    let row: PostgresRow
    let columns: PostgresRandomAccessRow

    var allColumns: [String] { columns.map(\.columnName) }
    func contains(column: String) -> Bool { columns.contains(column) }
    func decodeNil(column: String) throws -> Bool { !columns.contains(column) || columns[column].bytes == nil }

    func decode<T: Decodable>(column: String, as type: T.Type) throws -> T {
        if columns.contains(column), let value = try? Self.native(columns[column], as: type) { return value }
        return try row.sql().decode(column: column, as: type)
    }

    /// PostgresNIO's own decoding for the types this storage reads; nil for any other type.
    static func native<T>(_ cell: PostgresCell, as type: T.Type) throws -> T? {
        switch type {
        case is String.Type: return try cell.decode(String.self) as? T
        case is String?.Type: return try cell.decode(String?.self) as? T
        case is Int.Type: return try cell.decode(Int.self) as? T
        case is Int?.Type: return try cell.decode(Int?.self) as? T
        case is Double.Type: return try cell.decode(Double.self) as? T
        default: return nil
        }
    }
}
