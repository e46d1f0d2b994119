import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A FIFO lock for async code without an actor hop: an uncontended lock/unlock is two
/// short critical sections; waiters are resumed in arrival order.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [(CheckedContinuation<Void, Never>, (any EventLoop)?)] = []
    }
    private let state = NIOLockedValueBox(State())

    func lock() async {
        if tryLock() { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { s -> Bool in
                if !s.locked { s.locked = true; return true }
                s.waiters.append((c, MultiThreadedEventLoopGroup.currentEventLoop))
                return false
            }
            if now { c.resume() }
        }
    }

    /// Takes the lock if it is free, without waiting.
    func tryLock() -> Bool {
        state.withLockedValue { s in
            if s.locked { return false }
            s.locked = true
            return true
        }
    }

    /// Hands the lock to the next waiter, if any (it stays locked for them).
    func unlock() {
        let next = state.withLockedValue { s -> (CheckedContinuation<Void, Never>, (any EventLoop)?)? in
            if s.waiters.isEmpty { s.locked = false; return nil }
            return s.waiters.removeFirst()
        }
        guard let (c, home) = next else { return }
        if let home, !home.inEventLoop { home.execute { c.resume() } } else { c.resume() }
    }

    func withLock<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        await lock()
        return try await whileHeld(body)
    }

    /// Runs `body` with the lock already taken by the caller, and releases it afterwards.
    func whileHeld<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        do {
            let r = try await body()
            unlock()
            return r
        } catch {
            unlock()
            throw error
        }
    }
}
