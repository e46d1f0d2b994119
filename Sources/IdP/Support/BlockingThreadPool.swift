import Foundation

/// A fixed set of threads for blocking C calls (libldap), so they never occupy Swift's
/// cooperative pool or an event loop. Work beyond `maxQueued` waiting jobs is refused at once
/// rather than piling up behind a slow backend.
public final class BlockingThreadPool: @unchecked Sendable {
    public struct Saturated: Error, CustomStringConvertible {
        public var description: String { "too many blocking operations are waiting" }
    }

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var head = 0
    private let maxQueued: Int

    public init(name: String, threads: Int, maxQueued: Int = 256) {
        self.maxQueued = maxQueued
        for i in 0..<max(1, threads) {
            let t = Thread { self.loop(name) }
            t.name = "\(name)-\(i)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Runs `body` on one of the pool's threads and resumes the caller with its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            condition.lock()
            guard jobs.count - head < maxQueued else {
                condition.unlock()
                c.resume(throwing: Saturated())
                return
            }
            jobs.append {
                do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
            }
            condition.signal()
            condition.unlock()
        }
    }

    /// The name of the pool whose thread this is, or nil (for tests and assertions).
    public static var currentPoolName: String? { Thread.current.threadDictionary["portal.blocking-pool"] as? String }

    private func loop(_ name: String) {
        Thread.current.threadDictionary["portal.blocking-pool"] = name
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head > 64 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
        }
    }
}
