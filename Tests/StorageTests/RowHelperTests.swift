import Foundation
import IdP
import Logging
import SQLKit
@testable import Storage
import Testing

@Suite("Row helpers")
struct RowHelperTests {
    @Test func plainStringArraysParseWithoutTheDecoderAndEverythingElseFallsBack() throws {
        #expect(simpleStringArray("[]") == [])
        #expect(simpleStringArray(#"["dev"]"#) == ["dev"])
        #expect(simpleStringArray(#"["dev","ops","CN=Ops ✓"]"#) == ["dev", "ops", "CN=Ops ✓"])
        #expect(simpleStringArray(#"["",""]"#) == ["", ""])
        // Escapes, whitespace, junk: not for the fast path (nil → the full JSON decoder decides).
        for other in [#"["a\"b"]"#, #"["a\/b"]"#, #"["a", "b"]"#, #"["a",]"#, #"["a""b"]"#, #"["a"#, "[", "", "null", #"{"a":"b"}"#, #"["a"]x"#] {
            #expect(simpleStringArray(other) == nil, "\(other)")
        }
        // Round trip with the writer, including names the fast path must leave to the decoder.
        for list in [["dev"], ["a/b", #"quo"te"#, "back\\slash", "tab\t"], []] {
            let text = json(list)
            let parsed = try simpleStringArray(text) ?? JSONDecoder().decode([String].self, from: Data(text.utf8))
            #expect(parsed == list)
        }
    }
}

@Suite("SQLite backend")
struct SQLiteBackendTests {
    static func path() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-storage-tests", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(UUID().uuidString + ".sqlite").path
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
    }

    /// The server turns SQLite's own checkpoints off: pages written reach the database file only
    /// through the background checkpointer, within a couple of seconds, and closing leaves no WAL.
    @Test func theBackgroundCheckpointerMovesTheWALIntoTheDatabaseFile() async throws {
        let path = try Self.path()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let backend = try await SQLiteBackend.open(path: path, logger: Logger(label: "test"), serving: true)
        let store = try await SQLStorage.open(backend, now: Fixture.t0)
        try await Task.sleep(for: .milliseconds(1500))  // the migrations' pages are checkpointed
        let before = Self.size(path)
        for i in 0..<400 {
            try await store.appendAudit(AuditEvent(time: Fixture.t0, type: "bench.event", actor: "actor-\(i)",
                                                   details: ["padding": String(repeating: "x", count: 400)]))
        }
        #expect(Self.size(path + "-wal") > 0)
        var grew = false
        for _ in 0..<40 where !grew {
            try await Task.sleep(for: .milliseconds(100))
            grew = Self.size(path) > before + 100_000
        }
        #expect(grew, "the database file did not grow: no checkpoint ran (\(before) → \(Self.size(path)))")
        #expect(try await store.auditEvents(AuditQuery(type: "bench.event", limit: 1000)).count == 400)
        try await store.close()
        #expect(Self.size(path + "-wal") <= 0, "the WAL was not checkpointed and removed at close")
    }

    /// A writer that never pauses still gets its WAL rewound: the background pass does the bulk and
    /// the writer finishes it, and should that thread fall behind (a busy machine), the writer
    /// checkpoints itself at the hard cap. Without them the file grows by everything written (here
    /// ≈ 64 MB); with them it stays near the cap (1,024 frames = 4 MB here).
    @Test func theWALStaysBoundedUnderAWriterThatNeverPauses() async throws {
        let path = try Self.path()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let logger = Logger(label: "test")
        let checkpointer = WALCheckpointer(path: path, logger: logger, interval: 0.2, earlyFrames: 128, catchUpFrames: 256, hardCapFrames: 1024)
        let backend = try await SQLiteBackend.open(path: path, logger: logger, serving: true, checkpointer: checkpointer)
        try await backend.run { db in try await db.raw("CREATE TABLE filler (k INTEGER PRIMARY KEY, v BLOB)").run() }
        let startSequence = Self.walCheckpointSequence(path)
        // Four writers queue on the write lock, so a transaction is always waiting: 4,000 × ≈ 4
        // pages (8 KB of overflow, a leaf, the table's root) ≈ 64 MB of WAL frames.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<1000 {
                        try await backend.transaction { db in try await db.raw("INSERT INTO filler (v) VALUES (randomblob(8000))").run() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let wal = Self.size(path + "-wal")
        let restarts = Self.walCheckpointSequence(path) &- startSequence
        #expect(wal > 0 && wal < 12_000_000, "the WAL grew to \(wal) bytes")
        #expect(restarts >= 2, "the WAL was started over \(restarts) times")
        #expect(checkpointer.catchUps + checkpointer.hardCapCheckpoints >= 1)
        let count = try await backend.read { db in try await db.raw("SELECT count(*) AS n FROM filler").first(decoding: Count.self) }
        #expect(count?.n == 4000)
        try await backend.close()
        #expect(Self.size(path + "-wal") <= 0)
    }

    struct Count: Decodable { let n: Int }

    /// The WAL header's checkpoint sequence number: it goes up each time the WAL starts over.
    static func walCheckpointSequence(_ path: String) -> UInt32 {
        guard let h = FileHandle(forReadingAtPath: path + "-wal"), let d = try? h.read(upToCount: 16), d.count == 16 else { return 0 }
        try? h.close()
        return d[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Values of every type the storage binds come back as written; a wrong type is an error, not a crash.
    @Test func bindsAndDecodesEveryTypeTheStorageUses() async throws {
        let path = try Self.path()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let backend = try await SQLiteBackend.open(path: path, logger: Logger(label: "test"))
        let row = try await backend.run { db in
            try await db.raw("SELECT \(bind: "tëxt ✓") AS s, \(bind: 42) AS i, \(bind: Int64.max) AS big, \(bind: true) AS b, \(bind: 1.5) AS d, \(bind: String?.none) AS n, \(bind: Data([0, 1, 2])) AS blob").first()
        }
        let r = try #require(row)
        #expect(try r.decode(column: "s", as: String.self) == "tëxt ✓")
        #expect(try r.decode(column: "i", as: Int.self) == 42)
        #expect(try r.decode(column: "big", as: Int64.self) == Int64.max)
        #expect(try r.decode(column: "b", as: Bool.self) == true)
        #expect(try r.decode(column: "d", as: Double.self) == 1.5)
        #expect(try r.decode(column: "n", as: String?.self) == nil)
        #expect(try r.decodeNil(column: "n"))
        #expect(try r.decode(column: "i", as: Int?.self) == 42)
        #expect(try r.decode(column: "blob", as: Data.self) == Data([0, 1, 2]))
        #expect(throws: (any Error).self) { try r.decode(column: "s", as: Int.self) }
        #expect(throws: (any Error).self) { try r.decode(column: "missing", as: Int.self) }
        // A constraint violation is an error with SQLite's message (the storage maps it to a conflict).
        let e = await #expect(throws: SQLiteError.self) {
            try await backend.run { db in
                try await db.raw("CREATE TABLE t (k TEXT PRIMARY KEY)").run()
                try await db.raw("INSERT INTO t VALUES ('a')").run()
                try await db.raw("INSERT INTO t VALUES ('a')").run()
            }
        }
        #expect(e?.message.contains("UNIQUE") == true)
        try await backend.close()
    }
}
