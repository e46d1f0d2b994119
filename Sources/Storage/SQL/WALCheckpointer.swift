import CSQLite3
import Foundation
import Logging

/// Checkpoints the WAL from a dedicated thread and connection, once a second (PASSIVE: never
/// blocks the serving connection's readers or writers), and once more at stop.
final class WALCheckpointer: @unchecked Sendable {
    private let path: String
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false
    private var thread: Thread?
    static let interval: TimeInterval = 1

    init(path: String, logger: Logger) { self.path = path; self.logger = logger }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "portal-sqlite-checkpoint"
        thread = t
        t.start()
    }

    func stop() {
        condition.lock()
        guard !stopping, thread != nil else { condition.unlock(); return }
        stopping = true
        condition.broadcast()
        while thread != nil { condition.wait() }
        condition.unlock()
    }

    private func run() {
        var db: OpaquePointer?
        if sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) != SQLITE_OK {
            logger.error("cannot open the database for checkpoints; the WAL file will grow", metadata: ["path": "\(path)"])
            if let db { sqlite3_close_v2(db) }
            db = nil
        }
        if let db {
            sqlite3_busy_timeout(db, 1000)
            // A connection learns the file is in WAL mode when it first reads it; until then a
            // checkpoint is a no-op (it reports -1 frames).
            sqlite3_exec(db, "PRAGMA journal_mode=WAL", nil, nil, nil)
        }
        condition.lock()
        while true {
            if !stopping { _ = condition.wait(until: Date().addingTimeInterval(Self.interval)) }
            let last = stopping
            condition.unlock()
            if let db {
                var frames: Int32 = 0, done: Int32 = 0
                let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
                if rc != SQLITE_OK && rc != SQLITE_BUSY {
                    logger.warning("WAL checkpoint failed", metadata: ["code": "\(rc)", "message": "\(String(cString: sqlite3_errmsg(db)))"])
                }
            }
            condition.lock()
            if last { break }
        }
        if let db { sqlite3_close_v2(db) }
        thread = nil
        condition.broadcast()
        condition.unlock()
    }
}
