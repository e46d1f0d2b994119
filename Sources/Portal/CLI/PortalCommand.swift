import ArgumentParser
import Foundation
import Hummingbird
import IdP
import Logging
import NIOPosix
import Storage

@main
struct PortalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portal",
        abstract: "Identity portal for Kubernetes: an OpenID Connect provider with kubectl onboarding.",
        subcommands: [Serve.self, CheckConfig.self, UserCommand.self, ClientCommand.self, KeysCommand.self, AuditCommand.self, RobotCommand.self, CredentialCommand.self, SessionCommand.self, ThrottleCommand.self, BackupCommand.self, RestoreCommand.self, MigrateCommand.self, BenchCommand.self, DocsCommand.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("YAML configuration file (default: $PORTAL_CONFIG, else built-in defaults).", valueName: "file"))
    var config: String?

    /// Loads the configuration or exits with every problem listed.
    func load() throws -> PortalConfig {
        var loader = ConfigLoader(file: config)
        let c = loader.load()
        if !loader.problems.isEmpty {
            for p in loader.problems { FileHandle.standardError.write(Data("config error: \(p)\n".utf8)) }
            throw ExitCode(2)
        }
        return c
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the portal.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        Logs.bootstrap(format: config.logFormat, level: config.logLevel)
        PortalMetricsRegistry.bootstrap()
        let logger = Logger(label: "portal")
        if !config.tasksOnEventLoops {
            logger.info("request handlers run on Swift's thread pool (server.tasks_on_event_loops: false)")
        } else if EventLoopExecutor.install() {
            logger.info("request handlers run on the HTTP event loops")
        } else {
            logger.warning("server.tasks_on_event_loops: NIO could not take over Swift concurrency's executor; request handlers run on Swift's thread pool")
        }
        if !config.usesPostgres {
            do { try SQLiteServerLock.acquire(for: config.sqlitePath) } catch {
                logger.critical("\(error)")
                throw ExitCode(1)
            }
        }
        let runtime: Runtime
        do {
            runtime = try await Runtime.open(config: config, serving: true, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        do {
            try await runtime.keys.maintain()
        } catch {
            await runtime.close()
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        if !runtime.sealer.encrypts {
            logger.warning("SIGNING KEYS ARE STORED UNENCRYPTED: set PORTAL_KEY_ENCRYPTION_KEY or signing.encryption_key_file (at least 32 random characters) to encrypt them at rest")
        }
        for w in config.warnings { logger.warning("\(w)") }
        if config.tls == nil && config.issuer.hasPrefix("http://") {
            logger.notice("serving plain HTTP on a loopback issuer; kube-apiserver needs an https issuer in production")
        }
        if let token = try await runtime.setup.issueTokenIfNeeded() {
            let minutes = Int(config.setupLinkLifetime / 60)
            FileHandle.standardOutput.write(Data("""

            No administrator exists yet. Open this one-time link within \(minutes) minutes to create one:

                \(config.issuer)/setup?token=\(token)


            """.utf8))
        }
        do {
            let app = try buildApplication(runtime: runtime)
            logger.info("portal listening", metadata: ["address": "\(config.listenHost):\(config.listenPort)", "issuer": "\(config.issuer)",
                                                       "database": "\(config.databaseDescription)"])
            let lag = EventLoopLag.start(MultiThreadedEventLoopGroup.singleton, logger: logger)
            defer { for probe in lag { probe.cancel() } }
            try await app.runService()
            logger.info("portal stopped")
        } catch {
            logger.critical("portal failed", metadata: ["error": "\(error)"])
            await runtime.close()
            throw ExitCode(1)
        }
        await runtime.close()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate the configuration and print every problem.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        var loader = ConfigLoader(file: options.config)
        let c = loader.load()
        for w in c.warnings { print("WARNING: \(w)") }
        if loader.problems.isEmpty {
            print("configuration OK: issuer \(c.issuer), listen \(c.listenHost):\(c.listenPort), database \(c.databaseDescription), \(c.clients.count) client(s)")
            return
        }
        for p in loader.problems { print(p) }
        throw ExitCode(1)
    }
}

/// Opens the same database a running server uses, for one CLI action.
func withCLIRuntime<R>(_ options: ConfigOption, _ body: (Runtime) async throws -> R) async throws -> R {
    let config = try options.load()
    var logger = Logger(label: "portal-cli")
    logger.logLevel = .warning
    let runtime = try await Runtime.open(config: config, logger: logger)
    do {
        let r = try await body(runtime)
        await runtime.close()
        return r
    } catch let e as UserAdminError {
        await runtime.close()
        FileHandle.standardError.write(Data("error: \(e)\n".utf8))
        throw ExitCode(1)
    } catch {
        await runtime.close()
        throw error
    }
}

/// Reads a secret from standard input (never from argv): the whole input minus one trailing newline.
func readSecretFromStdin() throws -> String {
    let data = FileHandle.standardInput.readDataToEndOfFile()
    guard var s = String(data: data, encoding: .utf8) else { throw ValidationError("standard input is not UTF-8") }
    if s.hasSuffix("\r\n") { s.removeLast(2) } else if s.hasSuffix("\n") { s.removeLast() }
    return s
}
