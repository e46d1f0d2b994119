import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// The replica's PostgreSQL connections as one pool per NIO event loop, plus the refresh writer's
/// own. A request runs on an event loop (`server.tasks_on_event_loops`) and takes a connection of
/// that same loop: the query is written, and its answer read and acted on, without waking another
/// thread. Off an event loop (the CLI, or the option turned off) any pool serves.
///
/// Refresh rotations (`RotationBatcher`) go through `writer`: connections on an event loop of their
/// own (`writerGroup`), whose answers are read at once instead of after the HTTP work queued on a
/// busy request loop — on two cores under refresh load, that queue made a batch's round trip
/// 1.4–2.5 ms of which PostgreSQL's work was 0.3 (docs/performance.md, seventh steps).
/// `database.pool_size` is the total of all of them.
struct PostgresPools: Sendable {
    let members: [(loop: any EventLoop, client: PostgresClient)]
    /// The refresh writer's pool (nil when the pool size leaves no connection for it).
    let writer: PostgresClient?
    /// Every pool: the loops' and the writer's.
    var all: [PostgresClient] { members.map(\.client) + (writer.map { [$0] } ?? []) }
    /// Runs every member's pool; cancelling it closes them all.
    let runner: Task<Void, Never>

    /// The refresh writer's event loop: one thread for the process, never shut down (like NIO's singleton).
    static let writerGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    init(configuration: PostgresClient.Configuration, size: Int, group: MultiThreadedEventLoopGroup = .singleton,
         writerGroup: MultiThreadedEventLoopGroup? = PostgresPools.writerGroup, logger: Logger) {
        let loops = Array(group.makeIterator())
        let (writerShare, rest) = writerGroup == nil ? (0, size) : Self.writerShare(size: size)
        func client(_ share: Int, _ loop: any EventLoop) -> PostgresClient {
            var c = configuration
            c.options.maximumConnections = share
            // Not `share`: PostgresNIO's pool traps (`precondition(minimumConcurrentConnections <=
            // stats.active)` in `createNewDemandConnectionIfPossible`) when a lease arrives while its
            // minimum connections are failing to reconnect — a replica died so when PostgreSQL was
            // restarted under refresh traffic (test_db_outage). Connections open on demand instead.
            c.options.minimumConnections = 0
            return PostgresClient(configuration: c, eventLoopGroup: loop, backgroundLogger: logger)
        }
        var members: [(loop: any EventLoop, client: PostgresClient)] = []
        for (i, share) in Self.shares(size: rest, loops: loops.count).enumerated() {
            members.append((loops[i], client(share, loops[i])))
        }
        self.members = members
        writer = writerGroup.flatMap { g in writerShare > 0 ? client(writerShare, g.next()) : nil }
        let clients = members.map(\.client) + (writer.map { [$0] } ?? [])
        let entering = NIOLockedValueBox(0)
        self.entering = entering
        runner = Task {
            await withDiscardingTaskGroup { group in
                for client in clients {
                    group.addTask {
                        entering.withLockedValue { $0 += 1 }
                        await client.run()
                    }
                }
            }
        }
    }

    /// How many members' `run()` have been entered (counted just before the call).
    private let entering: NIOLockedValueBox<Int>

    /// Returns once every member's `run()` has been called (bounded by `limit`): PostgresNIO warns on
    /// stderr about a lease before `run()` — a stray line in a CLI error that must be one line, seen
    /// when the cores were busy and one `Task.yield()` was not enough for the runner to start.
    func untilRunning(limit: Duration = .seconds(2)) async {
        let deadline = ContinuousClock.now + limit
        let count = all.count
        while entering.withLockedValue({ $0 }) < count, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .microseconds(200))
        }
        // `run()` sets its flag in its first statement, right after the count moved.
        await Task.yield()
    }

    /// Connections per member: `size` spread over at most `loops` members, sizes differing by at most one.
    static func shares(size: Int, loops: Int) -> [Int] {
        let size = max(1, size)
        let count = max(1, min(loops, size))
        return (0..<count).map { (size + $0) / count }
    }

    /// Connections for the refresh writer out of `size`, and the rest for the loops' pools: a
    /// third, 1 to 4 (one batch in flight, more only while one stalls), none below 2.
    static func writerShare(size: Int) -> (writer: Int, rest: Int) {
        let size = max(1, size)
        guard size >= 2 else { return (0, size) }
        let w = min(4, max(1, size / 3))
        return (w, size - w)
    }

    /// The pool of the event loop this runs on, else any.
    var current: PostgresClient {
        if members.count > 1, let loop = MultiThreadedEventLoopGroup.currentEventLoop {
            for m in members where m.loop === loop { return m.client }
        }
        return members[Int.random(in: members.indices)].client
    }
}
