import Foundation

/// One thread that runs the jobs of tasks preferring it (`withTaskExecutorPreference`): SQLite
/// write transactions run here back to back, never queued behind HTTP work on an event loop.
final class WriterThread: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(name: String) {
        let t = Thread { [unowned self] in
            nameThisThread(name)
            loop()
        }
        t.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let j = UnownedJob(job)
        condition.lock()
        jobs.append(j)
        if jobs.count == 1 { condition.signal() }
        condition.unlock()
    }

    private func loop() {
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            swap(&batch, &jobs)
            condition.unlock()
            for j in batch { j.runSynchronously(on: asUnownedTaskExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}

/// Names the calling thread as `top -H` and /proc show it (Foundation's `Thread.name` does not
/// reach the kernel on Linux). Linux keeps 15 bytes.
func nameThisThread(_ name: String) {
    #if os(Linux)
    try? String(decoding: name.utf8.prefix(15), as: UTF8.self).write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
    #endif
}
