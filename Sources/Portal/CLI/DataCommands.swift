import ArgumentParser
import Foundation
import IdP
import Logging
import Storage

/// `portal backup FILE`, `portal restore FILE`, `portal migrate --to URL`: every record, from
/// one database to another (DataCopy). A backup is a SQLite file, whatever the source.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backup",
        abstract: "Write a consistent copy of the database (while the server runs) to FILE, a SQLite file.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The backup file to create.") var file: String
    @Flag(help: "Overwrite FILE if it exists.") var force = false

    func run() async throws {
        let config = try options.load()
        if FileManager.default.fileExists(atPath: file) && !force { throw ValidationError("\(file) exists; use --force to overwrite it") }
        let logger = cliLogger()
        let tmp = file + ".partial"
        for f in [tmp, tmp + "-wal", tmp + "-shm"] { try? FileManager.default.removeItem(atPath: f) }
        // Owner-only from the first byte (password hashes, sealed keys); SQLite gives its WAL the same mode.
        guard FileManager.default.createFile(atPath: tmp, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot create \(tmp)")
        }
        let summary: DataCopy.Summary
        do {
            summary = try await DataCommands.copy(from: { try await Runtime.openStorage(config, now: Date(), logger: logger) },
                                                  to: { try await DataCommands.sqlite(tmp, logger: logger) }, replace: false)
        } catch {
            for f in [tmp, tmp + "-wal", tmp + "-shm"] { try? FileManager.default.removeItem(atPath: f) }
            throw error
        }
        for f in [file + "-wal", file + "-shm"] { try? FileManager.default.removeItem(atPath: f) }
        if FileManager.default.fileExists(atPath: file) { try FileManager.default.removeItem(atPath: file) }
        try FileManager.default.moveItem(atPath: tmp, toPath: file)
        print("backup of \(config.databaseDescription) written to \(file): \(summary.total) records (\(summary))")
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore",
        abstract: "Copy a backup FILE into the configured database (refused when it is not empty, unless --force). Stop the servers first.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "A file written by `portal backup`.") var file: String
    @Flag(help: "Replace everything in a database that is not empty.") var force = false

    func run() async throws {
        let config = try options.load()
        guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file)") }
        try DataCommands.requireStoppedServer(config, before: "restoring")
        let logger = cliLogger()
        let summary = try await DataCommands.copy(from: { try await DataCommands.sqlite(file, logger: logger) },
                                                  to: { try await Runtime.openStorage(config, now: Date(), logger: logger) }, replace: force)
        print("restored \(summary.total) records into \(config.databaseDescription) (\(summary))")
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate",
        abstract: "Copy everything from the configured database into another one (e.g. SQLite → PostgreSQL). Stop the server first.")
    @OptionGroup var options: ConfigOption
    @Option(help: "The target: postgres://user:password@host:5432/database (or sqlite:///path).") var to: String
    @Flag(help: "Replace everything in a target that is not empty.") var force = false

    func run() async throws {
        let config = try options.load()
        var target = config
        target.databaseURL = to
        guard target.usesPostgres || to.hasPrefix("sqlite://") else { throw ValidationError("--to must be postgres://… or sqlite:///path") }
        guard target.databaseDescription != config.databaseDescription else { throw ValidationError("--to names the configured database itself") }
        try DataCommands.requireStoppedServer(config, before: "migrating")   // writes after the snapshot would be lost
        let logger = cliLogger()
        let summary = try await DataCommands.copy(from: { try await Runtime.openStorage(config, now: Date(), logger: logger) },
                                                  to: { try await Runtime.openStorage(target, now: Date(), logger: logger) }, replace: force)
        print("copied \(summary.total) records from \(config.databaseDescription) to \(target.databaseDescription) (\(summary))")
        print("next: point database.url (or PORTAL_DATABASE_URL) at it, keep the same key-encryption key, and start the servers")
    }
}

enum DataCommands {
    /// On SQLite, a running server holds the server lock: restoring or migrating under it would
    /// lose or overwrite its writes. (PostgreSQL replicas: the README says to stop them.)
    static func requireStoppedServer(_ config: PortalConfig, before doing: String) throws {
        guard !config.usesPostgres else { return }
        do { try SQLiteServerLock.acquire(for: config.sqlitePath) } catch { throw ValidationError("\(error) Stop it before \(doing).") }
    }

    /// Opens both databases, copies every record, closes both whatever happens.
    static func copy(from source: () async throws -> SQLStorage, to target: () async throws -> SQLStorage,
                     replace: Bool) async throws -> DataCopy.Summary {
        try await withStorages(source: source, target: target) { s, t in try await DataCopy.copy(from: s, to: t, replace: replace) }
    }

    static func sqlite(_ path: String, logger: Logger) async throws -> SQLStorage {
        let backend = try await SQLiteBackend.open(path: path, logger: logger)
        do { return try await SQLStorage.open(backend, now: Date()) } catch {
            try? await backend.close()
            throw error
        }
    }
}

func cliLogger() -> Logger {
    var logger = Logger(label: "portal-cli")
    logger.logLevel = .warning
    return logger
}

/// Opens both databases, runs `body`, closes both whatever happens.
func withStorages<R>(source: () async throws -> SQLStorage, target: () async throws -> SQLStorage,
                     _ body: (SQLStorage, SQLStorage) async throws -> R) async throws -> R {
    let s = try await source()
    let t: SQLStorage
    do { t = try await target() } catch {
        try? await s.close()
        throw error
    }
    do {
        let r = try await body(s, t)
        try? await s.close(); try? await t.close()
        return r
    } catch {
        try? await s.close(); try? await t.close()
        throw error
    }
}
