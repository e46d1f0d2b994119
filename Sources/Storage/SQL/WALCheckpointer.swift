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
///   second, or back to back while the writer's commit hook reports `earlyFrames` frames or more;
/// - when a pass ends short of the end and the WAL holds `catchUpFrames` or more, the rest (only
///   the frames appended during the pass) is checkpointed on the writer's own connection while it
///   holds the write lock: nothing can be appended meanwhile, so the pass completes and the next
///   write starts the WAL over (and trims the file to `journal_size_limit`);
/// - should this thread fall behind anyway (starved of CPU, a slow disk), the writer checkpoints
///   itself from its commit hook once the WAL holds `hardCapFrames`, as SQLite's own
///   autocheckpoint would (if this thread is in a pass just then, the writer waits for it to end):
///   the file passes that size by at most a transaction.
final class WALCheckpointer: @unchecked Sendable {
    private let path: String
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false
    private var wanted = false
    /// This thread is in a PASSIVE pass (it holds SQLite's checkpoint lock).
    private var passing = false
    /// The writer waits to checkpoint at the hard cap: no new pass starts meanwhile.
    private var writerWaiting = false
    private var thread: Thread?
    /// Finishes a checkpoint on the writer's connection, holding the write lock; set by the backend.
    var catchUp: (@Sendable () async -> Void)? {
        get { condition.lock(); defer { condition.unlock() }; return finishing }
        set { condition.lock(); finishing = newValue; condition.unlock() }
    }
    private var finishing: (@Sendable () async -> Void)?
    let interval: TimeInterval
    let earlyFrames: Int32
    let catchUpFrames: Int32
    let hardCapFrames: Int32
    private var finishedOnWriter = 0
    private var writerCheckpoints = 0
    /// Passes that the writer had to finish.
    var catchUps: Int { condition.lock(); defer { condition.unlock() }; return finishedOnWriter }
    /// Checkpoints the writer ran itself at the hard cap.
    var hardCapCheckpoints: Int { condition.lock(); defer { condition.unlock() }; return writerCheckpoints }

    /// The defaults, at 4 KB pages: a pass per 16 MB of WAL, the writer finishes past 32 MB, and
    /// checkpoints itself at 128 MB.
    init(path: String, logger: Logger, interval: TimeInterval = 1, earlyFrames: Int32 = 4096, catchUpFrames: Int32 = 8192,
         hardCapFrames: Int32 = 32768) {
        self.path = path
        self.logger = logger
        self.interval = interval
        self.earlyFrames = earlyFrames
        self.catchUpFrames = catchUpFrames
        self.hardCapFrames = hardCapFrames
    }

    func start() {
        let t = Thread { [self] in
            nameThisThread("sqlite-ckpt")
            run()
        }
        thread = t
        t.start()
    }

    /// Returns once the thread has ended (a second caller waits for it too).
    func stop() {
        condition.lock()
        if !stopping, thread != nil {
            stopping = true
            condition.broadcast()
        }
        while thread != nil { condition.wait() }
        condition.unlock()
    }

    /// Called by the writer after each commit with the WAL's frame count (`sqlite3_wal_hook`), on
    /// the writer's connection `db`, whose write lock is released by then (SQLite lets the hook
    /// checkpoint).
    func walGrew(to frames: Int32, db: OpaquePointer?) {
        guard frames >= earlyFrames else { return }
        if frames >= hardCapFrames, let db {
            var rc = Self.passive(db).rc
            if rc == SQLITE_BUSY {
                // This thread is in a pass, perhaps starved of CPU half-way (the full parallel test
                // suite once let the WAL pass three times the cap so): the writer waits for the pass
                // to end, holds off the next one, and checkpoints. Not for the catch-up that follows
                // a pass, which needs this writer.
                condition.lock()
                writerWaiting = true
                while passing { condition.wait() }
                condition.unlock()
                rc = Self.passive(db).rc
                condition.lock()
                writerWaiting = false
                condition.broadcast()
                condition.unlock()
            }
            if rc == SQLITE_OK {
                condition.lock()
                writerCheckpoints += 1
                condition.unlock()
                return
            }
        }
        condition.lock()
        if !wanted { wanted = true; condition.signal() }
        condition.unlock()
    }

    /// Installs `walGrew` as the commit hook of the writer's connection. `self` must outlive `db`
    /// (the backend owns both and closes the connection last).
    func hook(_ db: OpaquePointer) {
        sqlite3_wal_hook(db, { context, db, _, frames in
            guard let context else { return SQLITE_OK }
            Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue().walGrew(to: frames, db: db)
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
            while writerWaiting { condition.wait() }
            wanted = false
            let last = stopping
            passing = true
            condition.unlock()
            let result = db.map { Self.passive($0) }
            condition.lock()
            passing = false
            condition.broadcast()
            condition.unlock()
            if let db, let result { afterPass(db, result, last: last) }
            condition.lock()
            if last { break }
        }
        if let db { sqlite3_close_v2(db) }
        thread = nil
        condition.broadcast()
        condition.unlock()
    }

    /// A PASSIVE checkpoint on `db`: SQLite's result, the WAL's frames, and how many of them are in
    /// the database file now.
    static func passive(_ db: OpaquePointer) -> (rc: Int32, frames: Int32, done: Int32) {
        var frames: Int32 = -1, done: Int32 = -1
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
        return (rc, frames, done)
    }

    /// Logs a failed pass; when a pass ended short of a long WAL, has the writer finish it.
    private func afterPass(_ db: OpaquePointer, _ result: (rc: Int32, frames: Int32, done: Int32), last: Bool) {
        let (rc, frames, done) = result
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            logger.warning("WAL checkpoint failed", metadata: ["code": "\(rc)", "message": "\(String(cString: sqlite3_errmsg(db)))"])
            return
        }
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
