import Foundation
import Synchronization

/// A refresh-token rotation that has been handed to storage and is being written: the caller
/// does its own work meanwhile (signing the successor's id_token) and then awaits `outcome()`.
/// Nothing the caller prepared leaves the process unless the outcome is `.rotated`.
///
/// Settled exactly once by the store; awaited by one caller (a second `outcome()` after the
/// first has returned gets the same answer at once).
public final class PendingRefreshRotation: Sendable {
    private struct State {
        var result: Result<RefreshRotation, any Error>?
        var waiter: CheckedContinuation<RefreshRotation, any Error>?
    }

    private let state = Mutex(State())

    public init() {}

    /// The store's answer. A second call is ignored.
    public func settle(_ result: Result<RefreshRotation, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<RefreshRotation, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    public var isSettled: Bool { state.withLock { $0.result != nil } }
    /// Someone is waiting in `outcome()` (the tests check the continuation path this way).
    var isAwaited: Bool { state.withLock { $0.waiter != nil } }

    /// Waits for the store's answer.
    public func outcome() async throws -> RefreshRotation {
        try await withCheckedThrowingContinuation { c in
            let ready = state.withLock { s -> Result<RefreshRotation, any Error>? in
                if let r = s.result { return r }
                precondition(s.waiter == nil, "one caller awaits a pending rotation")
                s.waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }
}
