import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import Portal

@Suite("Event loop lag")
struct EventLoopLagTests {
    /// Keeps what was logged.
    struct Recorder: LogHandler {
        let lines: NIOLockedValueBox<[(Logger.Level, String, Logger.Metadata)]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            lines.withLockedValue { $0.append((level, message.description, metadata ?? [:])) }
        }
    }

    /// A job that holds a loop for 150 ms is reported once (with the loop and how late), a second one
    /// within the minute is not, and short jobs are not reported at all.
    @Test func aHeldLoopIsLoggedOnceAMinuteAndShortJobsAreNot() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let lines = NIOLockedValueBox<[(Logger.Level, String, Logger.Metadata)]>([])
        let logger = Logger(label: "test") { _ in Recorder(lines: lines) }
        let probes = EventLoopLag.start(group, logger: logger)
        let loops = Array(group.makeIterator())
        for _ in 0..<5 { try await loops[1].submit { _ = usleep(5_000) }.get() }
        try await Task.sleep(for: .milliseconds(100))
        #expect(lines.withLockedValue { $0.isEmpty })
        try await loops[1].submit { _ = usleep(150_000) }.get()
        try await Task.sleep(for: .milliseconds(100))
        try await loops[1].submit { _ = usleep(150_000) }.get()
        try await Task.sleep(for: .milliseconds(100))
        let logged = lines.withLockedValue { $0 }
        #expect(logged.count == 1)
        if let (level, _, metadata) = logged.first {
            #expect(level == .warning)
            #expect(metadata["loop"] == "1")
            let late = Int(metadata["late_ms"]?.description ?? "") ?? 0
            #expect(late >= 100 && late < 1000, "late_ms \(late)")
        }
        for p in probes { p.cancel() }
        try await group.shutdownGracefully()
    }
}
