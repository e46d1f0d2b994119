import Foundation
import IdP
import Logging
import ServiceLifecycle

/// Keeps signing keys current: reloads what other replicas changed, rotates when due.
struct KeyMaintenanceService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(30)

    func run() async throws {
        // A graceful shutdown cancels the sleep; that ends the loop normally.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                do { try await runtime.keys.maintain() } catch {
                    runtime.logger.error("signing key maintenance failed", metadata: ["error": "\(error)"])
                }
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
        // A graceful shutdown cancels the sleep; that ends the loop normally.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                do {
                    let now = runtime.clock.now()
                    guard try await runtime.storage.acquireLease(name: "gc", holder: holder, now: now, until: now + 300) else { continue }
                    let n = try await runtime.storage.purgeExpired(now: now)
                    if n > 0 { runtime.logger.info("purged expired records", metadata: ["rows": "\(n)"]) }
                } catch {
                    runtime.logger.error("garbage collection failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Writes credentials' "last used" in batches, so the webhook never writes per request.
struct CredentialUsageFlushService: Service {
    let runtime: Runtime
    var interval: Duration = .seconds(30)

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                await runtime.credentialUsage.flush(to: runtime.storage)
            }
        }
        await runtime.credentialUsage.flush(to: runtime.storage)  // what is left at shutdown
    }
}
