import CoreMetrics
import Foundation
import Logging
import NIOCore
import NIOPosix

/// How late each event loop runs a task due at a known time. Connections are served on these loops
/// (and request handlers too, with `server.tasks_on_event_loops`), so a job that holds one delays
/// every connection on it. The lag is the `portal_event_loop_lag_seconds` histogram in /metrics;
/// a loop held past `warnAfter` is logged, at most once a minute per loop.
enum EventLoopLag {
    static let period = TimeAmount.milliseconds(20)
    static let warnAfter = TimeAmount.milliseconds(50)

    /// Probes every loop of `group` until the returned tasks are cancelled.
    static func start(_ group: any EventLoopGroup, logger: Logger, warnEvery: TimeAmount = .seconds(60)) -> [RepeatedTask] {
        let timer = CoreMetrics.Timer(label: "portal_event_loop_lag_seconds", preferredDisplayUnit: .seconds)
        return group.makeIterator().enumerated().map { n, loop in
            let probe = Probe(due: .now() + period)
            return loop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                let now = NIODeadline.now()
                let late = max(.zero, now - probe.due)
                timer.recordNanoseconds(late.nanoseconds)
                if late >= warnAfter, probe.warned.map({ now - $0 >= warnEvery }) ?? true {
                    probe.warned = now
                    logger.warning("an event loop was held by one job: every connection it serves waited",
                                   metadata: ["loop": "\(n)", "late_ms": "\(late.nanoseconds / 1_000_000)"])
                }
                probe.due = NIODeadline.now() + period
            }
        }
    }

    /// One loop's probe state, only touched on that loop.
    private final class Probe: @unchecked Sendable {
        var due: NIODeadline
        var warned: NIODeadline?
        init(due: NIODeadline) { self.due = due }
    }
}
