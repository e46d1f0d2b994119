import ArgumentParser
import Foundation
import Hummingbird
import IdP
import Logging

/// Reference limits for `bench/run.sh`, measured with the same build and stack as the server:
/// a hello-world route on the same HTTP server, and bcrypt verifications per second at the
/// configured cost on the same thread pool. Hidden from help: not an operator command.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Reference limits for the benchmark suite (bench/run.sh).", shouldDisplay: false,
        subcommands: [Hello.self, Hash.self, Rotation.self, Floor.self])

    struct Hello: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve GET / → \"hello\" on the portal's HTTP stack.")
        @Option(help: "host:port to listen on") var listen: String
        @Option(help: "body size in bytes (default: the 5 bytes of \"hello\")") var bytes: Int?

        func run() async throws {
            _ = EventLoopExecutor.install()   // the same stack as `portal serve` by default
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
                throw ValidationError("--listen takes host:port")
            }
            var logger = Logger(label: "bench-hello")
            logger.logLevel = .warning
            let router = Router()
            let body = bytes.map { String(repeating: "x", count: max(0, $0)) } ?? "hello"
            router.get("/") { _, _ in body }
            let app = Application(router: router, server: .http1(),
                                  configuration: .init(address: .hostname(String(listen[..<colon]), port: port), serverName: nil),
                                  logger: logger)
            try await app.runService()
        }
    }

    struct Hash: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "bcrypt verifications per second through the server's hasher.")
        @Option(help: "bcrypt cost (default: passwords.bcrypt_cost of the configuration)") var cost: Int?
        @Option(help: "seconds to run") var seconds: Double = 5
        @Option(help: "verifications in flight at once") var concurrency: Int = 4
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let cost = try cost ?? options.load().bcryptCost
            let hasher = BcryptHasher(cost: UInt8(cost))
            let stored = try await hasher.hash("benchmark password")
            let start = Date()
            let deadline = start.addingTimeInterval(seconds)
            let count = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        var n = 0
                        while Date() < deadline {
                            guard await hasher.verify("benchmark password", hash: stored) else { return -1_000_000 }
                            n += 1
                        }
                        return n
                    }
                }
                return await group.reduce(0, +)
            }
            guard count > 0 else { throw ValidationError("bcrypt verification failed") }
            let elapsed = Date().timeIntervalSince(start)
            print(String(format: "{\"cost\": %d, \"verifications\": %d, \"seconds\": %.3f, \"per_second\": %.2f}",
                         cost, count, elapsed, Double(count) / elapsed))
        }
    }
}
