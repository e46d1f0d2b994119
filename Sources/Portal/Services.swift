import Foundation
import IdP
import Logging
import ServiceLifecycle

/// Runs `body` every `interval` until a graceful shutdown, which cancels the sleep and ends the
/// loop normally.
func everyUntilShutdown(_ interval: Duration, _ body: @escaping @Sendable () async -> Void) async {
    try? await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            await body()
        }
    }
}

/// Keeps signing keys current: reloads what other replicas changed, rotates when due.
struct KeyMaintenanceService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(30)

    func run() async throws {
        await everyUntilShutdown(interval) {
            do { try await runtime.keys.maintain() } catch {
                runtime.logger.error("signing key maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Deletes expired codes, sessions and dead refresh families; one replica at a time.
struct GarbageCollectionService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(600)
    let holder = SystemRandom().token(byteCount: 9)

    func run() async throws {
        await everyUntilShutdown(interval) {
            do {
                let now = runtime.clock.now()
                guard try await runtime.storage.acquireLease(name: "gc", holder: holder, now: now, until: now + 300) else { return }
                let n = try await runtime.storage.purgeExpired(now: now)
                if n > 0 { runtime.logger.info("purged expired records", metadata: ["rows": "\(n)"]) }
            } catch {
                runtime.logger.error("garbage collection failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Delivers back-channel logout tokens: at once when one is queued here (the kick), and every
/// few seconds for retries and for logouts queued by the CLI or another replica.
struct BackchannelLogoutService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(2)

    func run() async throws {
        let sender = BackchannelSender(provider: runtime.provider, transport: HTTPLogoutTransport(), logger: runtime.logger)
        let once = Coalescing()
        runtime.provider.logoutKick.set { once.run { await sender.deliverDue() } }
        await everyUntilShutdown(interval) { await sender.deliverDue() }
    }
}

/// At most one run of `work` at a time: a trigger while it runs asks for one more run after it,
/// however many triggers came (a burst of sign-outs is one or two passes over the queue).
final class Coalescing: @unchecked Sendable {
    private let lock = NSLock()
    private var running = false, again = false

    func run(_ work: @escaping @Sendable () async -> Void) {
        lock.lock()
        if running { again = true; lock.unlock(); return }
        running = true
        lock.unlock()
        Task {
            while true {
                lock.withLock { again = false }
                await work()
                let more = lock.withLock { () -> Bool in
                    if !again { running = false }
                    return again
                }
                if !more { return }
            }
        }
    }
}

/// Writes credentials' "last used" in batches, so the webhook never writes per request.
struct CredentialUsageFlushService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(30)

    func run() async throws {
        await everyUntilShutdown(interval) { await runtime.credentialUsage.flush(to: runtime.storage) }
        await runtime.credentialUsage.flush(to: runtime.storage)  // what is left at shutdown
    }
}
