import CoreMetrics

/// Counters derived from audit events, so every audited action is also counted:
/// portal_logins_total{method,result}, portal_tokens_issued_total{grant},
/// portal_refreshes_total{result}, portal_replays_detected_total{kind},
/// portal_audit_events_total{type,result}. The HTTP layer adds request latency histograms.
enum PortalMetrics {
    static func count(_ type: String, success: Bool, details: [String: String]) {
        let result = success ? "success" : "failure"
        switch type {
        case "login.success", "login.failure":
            Counter(label: "portal_logins_total", dimensions: [("method", details["method"] ?? "password"), ("result", result)]).increment()
        case "token.issue":
            Counter(label: "portal_tokens_issued_total", dimensions: [("grant", details["grant"] ?? "unknown")]).increment()
        case "token.refresh":
            Counter(label: "portal_refreshes_total", dimensions: [("result", result)]).increment()
        case "token.replay", "code.replay":
            Counter(label: "portal_replays_detected_total", dimensions: [("kind", type == "token.replay" ? "refresh_token" : "code")]).increment()
        default:
            break
        }
        Counter(label: "portal_audit_events_total", dimensions: [("type", type), ("result", result)]).increment()
    }
}
