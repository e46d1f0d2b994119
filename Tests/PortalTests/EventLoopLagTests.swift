import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Portal

/// The tests run beside hundreds of others on two cores, where any thread can wait tens of
/// milliseconds for a core: they look for what a 150 ms job must cause, and tolerate extra warnings.
@Suite("Event loop lag")
struct EventLoopLagTests {
    /// Keeps what was logged.
    struct Recorder: LogHandler {
        let lines: NIOLockedValueBox<[(level: Logger.Level, loop: String, lateMs: Int)]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let late = Int(metadata?["late_ms"]?.description ?? "") ?? -1
            lines.withLockedValue { $0.append((level, metadata?["loop"]?.description ?? "", late)) }
        }
    }

    static func probe(warnEvery: TimeAmount, _ body: (any EventLoop) async throws -> Void) async throws -> [(level: Logger.Level, loop: String, lateMs: Int)] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let lines = NIOLockedValueBox<[(level: Logger.Level, loop: String, lateMs: Int)]>([])
        let logger = Logger(label: "test") { _ in Recorder(lines: lines) }
        let probes = EventLoopLag.start(group, logger: logger, warnEvery: warnEvery)
        try await body(Array(group.makeIterator())[1])
        try await Task.sleep(for: .milliseconds(100))
        for p in probes { p.cancel() }
        try await group.shutdownGracefully()
        return lines.withLockedValue { $0 }
    }

    /// A job that holds a loop for 150 ms (after a few 5 ms ones) is logged as a warning naming the
    /// loop and how late the probe ran.
    @Test func aHeldLoopIsLoggedWithHowLongItWasHeld() async throws {
        let held = try await Self.probe(warnEvery: .zero) { loop in
            for _ in 0..<5 { try await loop.submit { _ = usleep(5_000) }.get() }
            try await Task.sleep(for: .milliseconds(100))
            try await loop.submit { _ = usleep(150_000) }.get()
        }
        #expect(held.allSatisfy { $0.level == .warning })
        #expect(held.contains { $0.loop == "1" && $0.lateMs >= 100 && $0.lateMs < 1000 }, "\(held)")
    }

    /// Within the minute a loop is reported once, however often it is held.
    @Test func aLoopIsReportedAtMostOnceAMinute() async throws {
        let held = try await Self.probe(warnEvery: .seconds(60)) { loop in
            for _ in 0..<3 {
                try await loop.submit { _ = usleep(150_000) }.get()
                try await Task.sleep(for: .milliseconds(60))
            }
        }
        #expect(held.filter { $0.loop == "1" }.count == 1, "\(held)")
    }
}
