import Foundation
import Logging

/// Writes audit events. A failed write is logged loudly but does not undo the action
/// it records (the action already happened); the log line carries the same fields.
public struct Auditor: Sendable {
    let store: any AuditStore
    let clock: any Clock
    let logger: Logger

    public init(store: any AuditStore, clock: any Clock, logger: Logger) {
        self.store = store; self.clock = clock; self.logger = logger
    }

    public func record(_ type: String, actor: String = "", subject: String = "", clientID: String = "", remoteAddress: String = "",
                       success: Bool = true, details: [String: String] = [:]) async {
        PortalMetrics.count(type, success: success, details: details)
        let event = AuditEvent(time: clock.now(), type: type, actor: actor, subject: subject, clientID: clientID,
                               remoteAddress: remoteAddress, success: success, details: details)
        do {
            try await store.appendAudit(event)
        } catch {
            logger.error("audit write failed", metadata: ["audit.type": "\(type)", "audit.actor": "\(actor)", "audit.subject": "\(subject)", "error": "\(error)"])
        }
    }
}
