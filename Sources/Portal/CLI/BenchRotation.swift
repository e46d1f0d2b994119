import ArgumentParser
import Foundation
import IdP
import Logging
import Storage

extension BenchCommand {
    /// The storage's share of a refresh, without HTTP or a signature: `chains` tasks on the event
    /// loops (as request handlers run) each look up their refresh token and rotate it — the same
    /// lookup, successor and audit row a refresh writes — for `seconds`. Prints rotations per second,
    /// the process's CPU per rotation and the batches the rotations were written in.
    struct Rotation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refresh-token lookups and rotations per second through the storage alone (no HTTP, no signature).")
        @Option(help: "a postgres:// URL (default: a fresh SQLite database in a temporary directory)") var database: String?
        @Option(help: "seconds to run") var seconds: Double = 5
        @Option(help: "chains rotated at once (each awaits its rotation before the next)") var chains: Int = 16

        func run() async throws {
            _ = EventLoopExecutor.install()
            var logger = Logger(label: "bench-rotation")
            logger.logLevel = .warning
            var config = PortalConfig()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portal-bench-\(getpid())").path
            config.databaseURL = database ?? "sqlite://" + dir + "/portal.db"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let storage = try await Runtime.openStorage(config, now: Date(), serving: true, logger: logger)
            let random = SystemRandom()
            let heads = try await BenchChains.start(chains, in: storage, random: random)
            let before = BenchCPU.processSeconds()
            let start = ContinuousClock.now
            let deadline = start + .milliseconds(Int64(seconds * 1000))
            let count = try await withThrowingTaskGroup(of: Int.self) { group in
                for head in heads {
                    group.addTask {
                        var current = head
                        var n = 0
                        while ContinuousClock.now < deadline {
                            let hash = Secrets.sha256Hex(current)
                            guard let (_, family) = try await storage.refreshToken(hash: hash) else { throw ValidationError("token not found") }
                            let t = Date()
                            let next = random.token()
                            let successor = RefreshToken(hash: Secrets.sha256Hex(next), familyID: family.id, clientID: "kubernetes",
                                                         createdAt: t, idleExpiresAt: t + 86_400)
                            let event = AuditEvent(time: t, type: "token.refresh", actor: "bench", subject: "bench", clientID: "kubernetes",
                                                   remoteAddress: "127.0.0.1", details: ["family": family.id])
                            let outcome = try await storage.rotateRefreshToken(hash: hash, now: t, successor: successor, audit: event)
                            guard outcome == .rotated else { throw ValidationError("rotation answered \(outcome)") }
                            current = next
                            n += 1
                        }
                        return n
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - start
            let cpu = BenchCPU.processSeconds() - before
            let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let s = storage.rotationStatistics
            try await storage.close()
            print(String(format: "{\"backend\": \"%@\", \"rotations\": %d, \"seconds\": %.3f, \"per_second\": %.1f, \"cpu_ms_per_rotation\": %.4f, \"batches\": %d, \"mean_batch\": %.2f, \"largest_batch\": %d}",
                         database == nil ? "sqlite" : "postgres", count, wall, Double(count) / wall, cpu * 1000 / Double(max(count, 1)),
                         s.batches, Double(s.requests) / Double(max(s.batches, 1)), s.largest))
        }
    }
}

/// Refresh-token chains for the benchmarks: `count` families, each with a first token; returns the tokens.
enum BenchChains {
    static func start(_ count: Int, in storage: SQLStorage, random: SystemRandom) async throws -> [String] {
        let now = Date()
        var heads: [String] = []
        for _ in 0..<max(1, count) {
            let family = RefreshFamily(id: random.identifier(), grant: Grant(userID: "bench", clientID: "kubernetes", scopes: ["openid"],
                                                                            authTime: now, authMethod: "password"),
                                       createdAt: now, expiresAt: now + 86_400)
            let token = random.token()
            try await storage.startFamily(family, firstToken: RefreshToken(hash: Secrets.sha256Hex(token), familyID: family.id,
                                                                           clientID: "kubernetes", createdAt: now, idleExpiresAt: now + 86_400))
            heads.append(token)
        }
        return heads
    }
}

/// The process's user + system CPU time so far.
enum BenchCPU {
    static func processSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }
}
