import Foundation

/// Deadlines for many short operations, watched by one task instead of a sleeping task each.
///
/// Every PostgreSQL operation is bounded (acquire timeout, then operation timeout). A timer task
/// per operation — created, sleeping, cancelled when the answer came first — cost two task
/// creations and a dispatch timer per statement on the hot path (a refresh makes two). Here an
/// operation registers its deadline (a lock and a dictionary insert) and removes it when it
/// answers; one ticker wakes every `resolution` while anything is registered, runs what is due,
/// and stops when nothing is left. A deadline is honoured up to `resolution` late.
final class DeadlineWatch: @unchecked Sendable {
    /// What a due entry does: nil to drop it, or a new deadline to be called again then.
    typealias Fire = @Sendable () -> ContinuousClock.Instant?

    let resolution: Duration
    private let lock = NSLock()
    private var entries: [Int: (at: ContinuousClock.Instant, fire: Fire)] = [:]
    private var nextID = 0
    private var ticking = false

    init(resolution: Duration = .milliseconds(20)) { self.resolution = resolution }

    /// Registers `fire` for `at`; the id removes it.
    func add(at: ContinuousClock.Instant, _ fire: @escaping Fire) -> Int {
        let (id, start) = lock.withLock { () -> (Int, Bool) in
            nextID &+= 1
            entries[nextID] = (at, fire)
            defer { ticking = true }
            return (nextID, !ticking)
        }
        if start { Task.detached { [self] in await tick() } }
        return id
    }

    func remove(_ id: Int) { _ = lock.withLock { entries.removeValue(forKey: id) } }

    var count: Int { lock.withLock { entries.count } }

    private func tick() async {
        while true {
            try? await Task.sleep(for: resolution)
            let now = ContinuousClock.now
            let due: [(Int, Fire)] = lock.withLock {
                let due = entries.filter { $0.value.at <= now }.map { ($0.key, $0.value.fire) }
                for (id, _) in due { entries[id] = nil }
                return due
            }
            for (id, fire) in due {
                if let again = fire() { lock.withLock { entries[id] = (again, fire) } }
            }
            let stop = lock.withLock { () -> Bool in
                if entries.isEmpty { ticking = false; return true }
                return false
            }
            if stop { return }
        }
    }
}
