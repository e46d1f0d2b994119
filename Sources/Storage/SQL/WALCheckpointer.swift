import CSQLite3
import Foundation
import Logging

/// Keeps the serving process's WAL file bounded without making requests wait for the disk.
///
/// SQLite only rewinds the WAL when a write begins after a checkpoint reached its very last frame.
/// A checkpoint on another connection copies pages and fsyncs for tens of milliseconds while the
/// writer keeps appending, so under a steady write load it never reaches the end and the file
/// grows without bound (≈ 36 KB per refresh: a gigabyte in ten seconds of saturation). So:
/// - the bulk of the work, copying pages into the database file and fsyncing, runs here on a
///   thread and connection of its own (PASSIVE: it never blocks readers or the writer), once a
///   second, or as soon as the writer's commit hook reports `earlyFrames` frames;
/// - when a pass ends short of the end and the WAL holds `catchUpFrames` or more, the rest (only
///   the frames appended during the pass) is checkpointed on the writer's own connection while it
///   holds the write lock: nothing can be appended meanwhile, so the pass completes and the next
///   write starts the WAL over (and trims the file to `journal_size_limit`).
final class WALCheckpointer: @unchecked Sendable {
    private let path: String
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false
    private var wanted = false
    /// The WAL's frame count when the last pass ended.
    private var passedAt: Int32 = 0
    private var thread: Thread?
    /// Finishes a checkpoint on the writer's connection, holding the write lock; set by the backend.
    var catchUp: (@Sendable () async -> Void)?
    let interval: TimeInterval
    let earlyFrames: Int32
    let catchUpFrames: Int32
    private var finishedOnWriter = 0
    /// Passes that the writer had to finish.
    var catchUps: Int { condition.lock(); defer { condition.unlock() }; return finishedOnWriter }

    init(path: String, logger: Logger, interval: TimeInterval = 1, earlyFrames: Int32 = 4096, catchUpFrames: Int32 = 8192) {
        self.path = path
        self.logger = logger
        self.interval = interval
        self.earlyFrames = earlyFrames
        self.catchUpFrames = catchUpFrames
    }

    func start() {
        let t = Thread { [self] in
            nameThisThread("sqlite-ckpt")
            run()
        }
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

    /// Called by the writer after each commit with the WAL's frame count (`sqlite3_wal_hook`).
    func walGrew(to frames: Int32) {
        guard frames >= earlyFrames else { return }
        condition.lock()
        if frames < passedAt { passedAt = 0 }  // the WAL started over
        // Not after every commit: each pass makes the writer's connection drop its page cache.
        if !wanted && frames - passedAt >= earlyFrames { wanted = true; condition.signal() }
        condition.unlock()
    }

    /// Installs `walGrew` as the commit hook of the writer's connection. `self` must outlive `db`
    /// (the backend owns both and closes the connection last).
    func hook(_ db: OpaquePointer) {
        sqlite3_wal_hook(db, { context, _, _, frames in
            guard let context else { return SQLITE_OK }
            Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue().walGrew(to: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
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
            if !stopping && !wanted { _ = condition.wait(until: Date().addingTimeInterval(interval)) }
            wanted = false
            let last = stopping
            condition.unlock()
            if let db { pass(db, last: last) }
            condition.lock()
            if last { break }
        }
        if let db { sqlite3_close_v2(db) }
        thread = nil
        condition.broadcast()
        condition.unlock()
    }

    private func pass(_ db: OpaquePointer, last: Bool) {
        var frames: Int32 = 0, done: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            logger.warning("WAL checkpoint failed", metadata: ["code": "\(rc)", "message": "\(String(cString: sqlite3_errmsg(db)))"])
            return
        }
        condition.lock()
        passedAt = max(frames, 0)
        condition.unlock()
        guard !last, rc == SQLITE_OK, done < frames, frames >= catchUpFrames, let catchUp else { return }
        let finished = DispatchSemaphore(value: 0)
        Task { await catchUp(); finished.signal() }
        finished.wait()
        condition.lock()
        finishedOnWriter += 1
        condition.unlock()
        logger.debug("WAL checkpoint finished on the writer", metadata: ["frames": "\(frames)", "behind": "\(frames - done)"])
    }
}
