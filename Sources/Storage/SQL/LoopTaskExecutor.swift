import NIOCore

/// Runs the jobs of tasks preferring it on one NIO event loop (docs/performance.md, eighth steps).
/// The PostgreSQL refresh writer's batches run on the loop that owns the writer's connections
/// (`PostgresPools.writerGroup`): a statement is written and its answer acted on by the same thread,
/// with no hand-off to another thread and back per batch.
final class LoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let j = UnownedJob(job)
        loop.execute { j.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
