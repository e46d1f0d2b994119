import Foundation

/// One `portal serve` per SQLite database: a second server on the same file would break no
/// single-use guarantee (SQLite serializes writers) but would double background work and
/// hide a deployment mistake. CLI commands do not take the lock; they share the database.
enum SQLiteServerLock {
    nonisolated(unsafe) private static var fd: Int32 = -1

    static func acquire(for databasePath: String) throws {
        let dir = (databasePath as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        let lockPath = databasePath + ".server-lock"
        let f = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard f >= 0 else { throw LockError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(f, LOCK_EX | LOCK_NB) == 0 else {
            close(f)
            throw LockError("another portal server is already using the SQLite database \(databasePath). "
                            + "SQLite serves one portal process; to run several replicas, use PostgreSQL (database.url: postgres://…).")
        }
        fd = f  // held until the process exits
    }

    struct LockError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}
