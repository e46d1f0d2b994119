import Foundation
import IdP
import Logging
import Testing
@testable import Portal

@Suite("Log lines for a terminal")
struct LogFormatTests {
    @Test func autoIsReadableOnATerminalAndJSONElsewhere() {
        #expect(Logs.format("auto", stderrIsTerminal: true) == .console)
        #expect(Logs.format("auto", stderrIsTerminal: false) == .json)
        #expect(Logs.format("json", stderrIsTerminal: true) == .json)
        #expect(Logs.format("text", stderrIsTerminal: true) == .text)
        #expect(PortalConfig().logFormat == "auto")
    }

    @Test func aLineHasTimeLevelLabelMessageAndSortedMetadata() {
        let line = ConsoleLogHandler.line(time: "2026-05-01T12:00:00.123Z", level: .warning, label: "portal", message: "not ready",
                                          metadata: ["signing_key": "false", "hb.request.id": "abc", "database": "un available"])
        #expect(line == #"2026-05-01T12:00:00.123Z WARNING  portal: not ready database="un available" request_id=abc signing_key=false"#)
    }

    @Test func oneEventIsAlwaysOneLine() {
        let line = ConsoleLogHandler.line(time: "t", level: .info, label: "portal", message: "a\nfake 2026 INFO line",
                                          metadata: ["user": "x\n2026 CRITICAL forged", "q": #"say "hi"\"#, "empty": ""])
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(line.contains(#"a\nfake 2026 INFO line"#))
        #expect(line.contains(#"user="x\n2026 CRITICAL forged""#))
        #expect(line.contains(#"q="say \"hi\"\\""#) && line.contains(#"empty="""#), "\(line)")
    }

    @Test func secretsStayRedacted() {
        var ldap = IdP.LDAPConfiguration()
        ldap.bindPassword = "hunter2-secret"
        let line = ConsoleLogHandler.line(time: "t", level: .debug, label: "portal", message: "starting",
                                          metadata: ["ldap": "\(ldap)"])
        #expect(!line.contains("hunter2") && line.contains("<redacted>"), "\(line)")
    }
}
