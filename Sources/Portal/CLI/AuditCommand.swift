import ArgumentParser
import Foundation
import IdP

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Show the audit log, newest first.")
    @OptionGroup var options: ConfigOption
    @Option(help: "Only events of this type (e.g. login.failure, token.replay).") var type: String?
    @Option(help: "Only events by this actor.") var actor: String?
    @Option(help: "Only events about this subject.") var subject: String?
    @Option(help: "Only events older than this id (pagination).") var before: Int64?
    @Option(help: "At most this many events (1–1000).") var limit: Int = 50
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await withCLIRuntime(options) { rt in
            let events = try await rt.storage.auditEvents(AuditQuery(type: type, actor: actor, subject: subject, before: before, limit: limit))
            let f = ISO8601DateFormatter()
            for e in events {
                if json {
                    var w = JSONObjectWriter()
                    w.add("id", Int(e.id ?? 0)); w.add("time", f.string(from: e.time)); w.add("type", e.type)
                    w.add("actor", e.actor); w.add("subject", e.subject); w.add("client_id", e.clientID)
                    w.add("remote_address", e.remoteAddress); w.add("success", e.success)
                    var d = JSONObjectWriter()
                    for (k, v) in e.details.sorted(by: { $0.key < $1.key }) { d.add(k, v) }
                    w.addRaw("details", d.string)
                    print(w.string)
                } else {
                    let details = e.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    print([String(e.id ?? 0), f.string(from: e.time), e.type, e.success ? "ok" : "FAILED", e.actor, e.subject,
                           e.clientID, e.remoteAddress, details].joined(separator: "\t"))
                }
            }
        }
    }
}
