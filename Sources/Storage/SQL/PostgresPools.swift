import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// The replica's PostgreSQL connections as one pool per NIO event loop. A request runs on an event
/// loop (`server.tasks_on_event_loops`) and takes a connection of that same loop: the query is
/// written, and its answer read and acted on, without waking another thread. Off an event loop
/// (the CLI, or the option turned off) any pool serves. `database.pool_size` is the total.
struct PostgresPools: Sendable {
    let members: [(loop: any EventLoop, client: PostgresClient)]
    /// Runs every member's pool; cancelling it closes them all.
    let runner: Task<Void, Never>

    init(configuration: PostgresClient.Configuration, size: Int, group: MultiThreadedEventLoopGroup = .singleton, logger: Logger) {
        let loops = Array(group.makeIterator())
        var members: [(loop: any EventLoop, client: PostgresClient)] = []
        for (i, share) in Self.shares(size: size, loops: loops.count).enumerated() {
            var c = configuration
            c.options.maximumConnections = share
            // Not `share`: PostgresNIO's pool traps (`precondition(minimumConcurrentConnections <=
            // stats.active)` in `createNewDemandConnectionIfPossible`) when a lease arrives while its
            // minimum connections are failing to reconnect — a replica died so when PostgreSQL was
            // restarted under refresh traffic (test_db_outage). Connections open on demand instead.
            c.options.minimumConnections = 0
            members.append((loops[i], PostgresClient(configuration: c, eventLoopGroup: loops[i], backgroundLogger: logger)))
        }
        self.members = members
        let clients = members.map(\.client)
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
        while entering.withLockedValue({ $0 }) < members.count, ContinuousClock.now < deadline {
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

    /// The pool of the event loop this runs on, else any.
    var current: PostgresClient {
        if members.count > 1, let loop = MultiThreadedEventLoopGroup.currentEventLoop {
            for m in members where m.loop === loop { return m.client }
        }
        return members[Int.random(in: members.indices)].client
    }
}
