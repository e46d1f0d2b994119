import Foundation
import IdP
import Testing

/// The one-line setup commands run through the real bash: whatever the names hold (quotes,
/// combining marks after an apostrophe, backslashes, $(…), newlines, emoji), kubectl must get
/// exactly the arguments intended and nothing else may run.
@Suite("Shell quoting, through real bash")
struct ShellQuotingFuzzTests {
    static let alphabet: [String] = ["a", "Z", "0", " ", "'", "\u{301}", "'\u{301}", "\"", "\\", "$", "$(touch /tmp/pwned-portal)", "`id`", ";", "&&", "|",
                                     "\n", "\t", "\r", "é", "e\u{301}", "🙂", "\u{2019}", "\u{2018}", "*", "?", "[", "]", "{", "}", "#", "!", "%", "~",
                                     "\u{7f}", "\u{2}", "--", "="]

    static func randomName(_ rng: inout some RandomNumberGenerator) -> String {
        let n = Int.random(in: 1...12, using: &rng)
        return (0..<n).map { _ in alphabet.randomElement(using: &rng)! }.joined()
    }

    /// Runs `script` in bash with a `kubectl` function that prints each argument NUL-terminated.
    static func argumentsSeenByKubectl(_ line: String) throws -> [[String]] {
        let script = "kubectl() { printf '%s\\0' \"$@\"; printf '\\1'; }\n" + line + "\n"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["--noprofile", "--norc", "-c", script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return data.split(separator: 1, omittingEmptySubsequences: true).map { call in
            call.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test func bashQuotingSurvivesAnyScalarSequence() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/bash") else { return }
        var rng = SystemRandomNumberGenerator()
        var batch: [String] = ["'\u{301}; touch /tmp/pwned-portal; echo '", "it's", "\u{2019}x\u{2019}"]
        for _ in 0..<300 { batch.append(Self.randomName(&rng)) }
        // One bash per batch: a line of `kubectl <quoted>` per name.
        let script = batch.map { "kubectl \(Kubeconfig.bashQuote($0))" }.joined(separator: "\n")
        let calls = try Self.argumentsSeenByKubectl(script)
        #expect(calls.count == batch.count, "a quote escaped and split or ended a line")
        for (name, call) in zip(batch, calls) {
            #expect(call == [name], "bash saw \(call.debugDescription) for \(name.debugDescription)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned-portal"))
    }

    @Test func wholeSetupLinesPassEveryNameThroughIntact() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/bash") else { return }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<40 {
            let clusterName = Self.randomName(&rng), user = Self.randomName(&rng), ns = Self.randomName(&rng)
            let cluster = ClusterSpec(name: clusterName, server: "https://k8s.example.org:6443", caPEM: nil, namespace: ns, clientID: "kubernetes")
            let entry = KubeconfigEntry(cluster: cluster, userName: user, auth: .token("kpc_" + Self.randomName(&rng)))
            let calls = try Self.argumentsSeenByKubectl(Kubeconfig.command(entry, shell: .bash))
            #expect(calls.count == 4, "expected set-cluster, set-credentials, set-context, use-context")
            guard calls.count == 4 else { continue }
            #expect(calls[0] == ["config", "set-cluster", clusterName, "--server=https://k8s.example.org:6443"])
            #expect(calls[1].prefix(3) == ["config", "set-credentials", entry.userEntryName])
            #expect(calls[2] == ["config", "set-context", entry.contextName, "--cluster=\(clusterName)", "--user=\(entry.userEntryName)",
                                 "--namespace=\(ns)"])
            #expect(calls[3] == ["config", "use-context", entry.contextName])
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned-portal"))
    }

    @Test func powershellQuotingDoublesEveryQuoteScalar() {
        #expect(Kubeconfig.powershellQuote("a'\u{301}b") == "'a''\u{301}b'")
        #expect(Kubeconfig.powershellQuote("\u{2019}") == "'\u{2019}\u{2019}'")
        // Every quote-like scalar is doubled, so the literal never ends early.
        let s = "x'\u{301}\u{2018}\u{0301}\u{201B}y"
        let q = Kubeconfig.powershellQuote(s)
        #expect(q.unicodeScalars.filter { [0x27, 0x2018, 0x2019, 0x201A, 0x201B].contains($0.value) }.count == 2 + 2 * 3)
    }
}
