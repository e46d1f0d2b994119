import Foundation
import IdP
import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix
@testable import Storage
import Testing

@Suite("SQLite backend: closing")
struct SQLiteCloseTests {
    /// `portal serve` closes its storage on an event loop. If the background checkpointer is just then
    /// waiting for the writer to finish a pass (a task queued on that same loop), closing must not
    /// block the loop: it hung for good (seen at the end of `portal bench rotation` under load).
    @Test func closingWhileTheCheckpointerWaitsForTheWriterReturns() async throws {
        let path = try SQLiteBackendTests.path()
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = LoopTaskExecutor(group.next())
        let logger = Logger(label: "test")
        // Every commit asks for a pass, and any pass that ends short asks the writer to finish it.
        let checkpointer = WALCheckpointer(path: path, logger: logger, interval: 0.05, earlyFrames: 1, catchUpFrames: 1, hardCapFrames: 1_000_000)
        let backend = try await SQLiteBackend.open(path: path, logger: logger, serving: true, checkpointer: checkpointer)
        try await backend.run { db in try await db.raw("CREATE TABLE filler (k INTEGER PRIMARY KEY, v BLOB)").run() }
        try await backend.run { db in try await db.raw("INSERT INTO filler (v) VALUES (randomblob(100))").run() }

        // The finishing task of this test: it says it began, waits until close has been called, and
        // then needs the loop that called it (as a task resumed from a loop does).
        let entered = NIOLockedValueBox(false)
        let closing = NIOLockedValueBox(false)
        checkpointer.catchUp = {
            entered.withLockedValue { $0 = true }
            while !closing.withLockedValue({ $0 }) { try? await Task.sleep(for: .milliseconds(2)) }
            await withTaskExecutorPreference(loop) {}
        }
        // A reader holds a snapshot, so the next pass cannot reach the end of the WAL.
        let holding = NIOLockedValueBox(false)
        let release = NIOLockedValueBox(false)
        let reader = Task {
            try await backend.read { db in
                try await db.raw("BEGIN").run()
                _ = try await db.raw("SELECT count(*) AS n FROM filler").first()
                holding.withLockedValue { $0 = true }
                while !release.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
                try await db.raw("COMMIT").run()
            }
        }
        while !holding.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
        for _ in 0..<20 { try await backend.run { db in try await db.raw("INSERT INTO filler (v) VALUES (randomblob(4000))").run() } }
        var waited = 0
        while !entered.withLockedValue({ $0 }), waited < 5_000 { try await Task.sleep(for: .milliseconds(5)); waited += 5 }
        #expect(entered.withLockedValue { $0 }, "no pass ended short of the WAL's end")
        release.withLockedValue { $0 = true }
        try await reader.value

        let closed = NIOLockedValueBox(false)
        Task {
            try await withTaskExecutorPreference(loop) {
                // Said on the loop, just before close: the finishing task's hop to the loop can only
                // run once close lets go of it.
                closing.withLockedValue { $0 = true }
                try await backend.close()
            }
            closed.withLockedValue { $0 = true }
        }
        waited = 0
        while !closed.withLockedValue({ $0 }), waited < 10_000 { try await Task.sleep(for: .milliseconds(10)); waited += 10 }
        #expect(closed.withLockedValue { $0 }, "closing the backend hung: the checkpointer waited for a task queued on the closing loop")
        if closed.withLockedValue({ $0 }) { try await group.shutdownGracefully() }
    }
}
