import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
@testable import Storage
import Testing

/// One PostgreSQL pool per event loop (PostgresPools): sizes add up to `database.pool_size`, and a
/// request running on an event loop gets that loop's pool.
@Suite("PostgreSQL pools per event loop")
struct PostgresPoolsTests {
    @Test func theSharesAddUpToThePoolSizeAndDifferByAtMostOne() {
        for size in 1...40 {
            for loops in 1...8 {
                let s = PostgresPools.shares(size: size, loops: loops)
                #expect(s.reduce(0, +) == size, "size \(size), loops \(loops): \(s)")
                #expect(s.count == min(size, loops))
                #expect(s.allSatisfy { $0 >= 1 })
                #expect((s.max() ?? 0) - (s.min() ?? 0) <= 1)
            }
        }
        #expect(PostgresPools.shares(size: 10, loops: 2) == [5, 5])
        #expect(PostgresPools.shares(size: 1, loops: 2) == [1])
        #expect(PostgresPools.shares(size: 0, loops: 2) == [1])
    }

    @Test func theRefreshWriterGetsAThirdOfThePoolOneToFourAndTheLoopsTheRest() {
        #expect(PostgresPools.writerShare(size: 10) == (3, 7))
        #expect(PostgresPools.writerShare(size: 2) == (1, 1))
        #expect(PostgresPools.writerShare(size: 1) == (0, 1), "one connection: the writer shares the loops' pool")
        #expect(PostgresPools.writerShare(size: 40) == (4, 36))
        for size in 2...40 {
            let (w, rest) = PostgresPools.writerShare(size: size)
            #expect(w >= 1 && w <= 4 && rest >= 1 && w + rest == size)
        }
    }

    @Test func theRefreshWritersPoolLivesOnItsOwnEventLoop() {
        let config = PostgresClient.Configuration(unixSocketPath: "/nonexistent/portal-test/.s.PGSQL.5432", username: "nobody", password: nil, database: nil)
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let pools = PostgresPools(configuration: config, size: 10, group: Self.group, logger: quiet)
        defer { pools.runner.cancel() }
        #expect(pools.writer != nil)
        #expect(!pools.members.contains { $0.client === pools.writer }, "not one of the request loops' pools")
        let single = PostgresPools(configuration: config, size: 1, group: Self.group, logger: quiet)
        defer { single.runner.cancel() }
        #expect(single.writer == nil && single.members.count == 1)
    }

    /// Never shut down: the pools' connection attempts (to nothing) may still be scheduling work on it.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)

    @Test func aTaskOnAnEventLoopGetsThatLoopsPool() async throws {
        let group = Self.group
        let config = PostgresClient.Configuration(unixSocketPath: "/nonexistent/portal-test/.s.PGSQL.5432", username: "nobody", password: nil, database: nil)
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical  // the pools try to connect to nothing in the background
        let pools = PostgresPools(configuration: config, size: 6, group: group, logger: quiet)
        defer { pools.runner.cancel() }
        #expect(pools.members.count == 3)
        for (i, member) in pools.members.enumerated() {
            let picked = try await member.loop.submit { pools.current === member.client }.get()
            #expect(picked, "member \(i)")
        }
        // Off every event loop: some member, never a crash.
        let any = pools.current
        #expect(pools.members.contains { $0.client === any })
    }

    /// The writer's batches run on the event loop its connections live on (`LoopTaskExecutor`): a task
    /// preferring it starts there and comes back there however it is resumed — by a timer, or by a
    /// thread outside NIO (as the SQLite writer or a settling rotation would).
    @Test func theWritersTasksRunOnTheWritersEventLoop() async throws {
        let writer = PostgresBackend.writerExecutor
        #expect(writer.loop === PostgresPools.writerGroup.next(), "the loop of the writer's pool")
        let seen = await Task(executorPreference: writer) { () async -> [Bool] in
            var seen = [writer.loop.inEventLoop]
            try? await Task.sleep(for: .milliseconds(2))
            seen.append(writer.loop.inEventLoop)
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread { c.resume() }
            }
            seen.append(writer.loop.inEventLoop)
            return seen
        }.value
        #expect(seen == [true, true, true])
        #expect(!writer.loop.inEventLoop)
    }
}
