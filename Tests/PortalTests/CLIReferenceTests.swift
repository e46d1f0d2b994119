import ArgumentParser
import Foundation
import Testing
@testable import Portal

@Suite("The CLI reference and shell completion")
struct CLIReferenceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theCommittedReferenceIsTheGeneratedOne() throws {
        let committed = try String(contentsOfFile: Self.root.appendingPathComponent("docs/cli.md").path, encoding: .utf8)
        #expect(committed == (try CLIReference.markdown()), "docs/cli.md is stale: run scripts/docs.sh")
    }

    @Test func everyVisibleCommandAndOptionIsInIt() throws {
        let text = try CLIReference.markdown()
        func walk(_ c: CLIReference.Command, _ path: [String]) {
            let p = path + [c.commandName]
            if p.count > 1 { #expect(text.contains("\n## `\(p.joined(separator: " "))`\n"), "\(p) has no section") }
            for a in c.arguments ?? [] where a.valueName != "help" && a.kind != "positional" {
                let long = a.names?.first { $0.kind == "long" }?.name
                if let long { #expect(text.contains("`--\(long)"), "\(p) --\(long) is missing") }
            }
            for s in c.subcommands ?? [] where s.shouldDisplay != false && s.commandName != "help" { walk(s, p) }
        }
        struct Root: Decodable { var command: CLIReference.Command }
        let tree = try JSONDecoder().decode(Root.self, from: Data(CLIReference.dumpJSON().utf8)).command
        walk(tree, [])
        // What the README promises is findable here.
        for s in ["`portal user add`", "`--admin`", "`portal credential create`", "`--user <user>`", "`portal robot disable`",
                  "`portal robot enable`", "`portal robot delete`", "at least 32", "http://localhost:18000", "PORTAL_KEY_ENCRYPTION_KEY",
                  "--generate-completion-script"] {
            #expect(text.contains(s), "\(s)")
        }
        #expect(!text.contains("## `portal docs") && !text.contains("## `portal bench"), "hidden commands are not documented")
    }

    @Test func completionScriptsKnowTheSubcommands() {
        for shell in [CompletionShell.bash, .zsh, .fish] {
            let script = PortalCommand.completionScript(for: shell)
            for word in ["check-config", "credential", "rotate", "redirect-uri"] {
                #expect(script.contains(word), "\(shell) completion lacks \(word)")
            }
        }
    }
}
