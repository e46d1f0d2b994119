import ArgumentParser
import Foundation

/// docs/cli.md, rendered from what the argument parser knows about every command (its
/// `--experimental-dump-help` description), so the reference cannot miss an option.
enum CLIReference {
    struct Command: Decodable {
        var commandName: String
        var abstract: String?
        var discussion: String?
        var shouldDisplay: Bool?
        var subcommands: [Command]?
        var arguments: [Argument]?
    }

    struct Argument: Decodable {
        struct Name: Decodable { var kind: String; var name: String }
        var kind: String
        var shouldDisplay: Bool?
        var isOptional: Bool
        var isRepeating: Bool
        var names: [Name]?
        var valueName: String?
        var defaultValue: String?
        var allValues: [String]?
        var abstract: String?
        var discussion: String?
    }

    /// The parser's own JSON description of the command tree.
    static func dumpJSON() -> String {
        do {
            _ = try PortalCommand.parseAsRoot(["--experimental-dump-help"])
        } catch {
            return PortalCommand.fullMessage(for: error)
        }
        preconditionFailure("--experimental-dump-help did not stop the parser")
    }

    static func markdown() throws -> String {
        struct Root: Decodable { var command: Command }
        let root = try JSONDecoder().decode(Root.self, from: Data(dumpJSON().utf8)).command
        var out = intro
        out += "\n## Commands\n\n"
        for c in visible(root.subcommands) { out += contents(c, path: ["portal"], depth: 0) }
        for c in visible(root.subcommands) { out += section(c, path: ["portal"]) }
        return out
    }

    private static func visible(_ commands: [Command]?) -> [Command] {
        (commands ?? []).filter { $0.shouldDisplay != false && $0.commandName != "help" }
    }

    private static func shown(_ arguments: [Argument]?) -> [Argument] {
        (arguments ?? []).filter { $0.shouldDisplay != false && $0.valueName != "help" }
    }

    private static func anchor(_ path: [String]) -> String { path.joined(separator: "-") }

    private static func contents(_ c: Command, path: [String], depth: Int) -> String {
        let p = path + [c.commandName]
        var out = String(repeating: "  ", count: depth) + "- [`\(p.joined(separator: " "))`](#\(anchor(p)))"
        if let a = c.abstract, !a.isEmpty { out += " — " + a }
        out += "\n"
        for s in visible(c.subcommands) { out += contents(s, path: p, depth: depth + 1) }
        return out
    }

    private static func section(_ c: Command, path: [String]) -> String {
        let p = path + [c.commandName]
        var out = "\n## `\(p.joined(separator: " "))`\n\n"
        if let a = c.abstract, !a.isEmpty { out += a + "\n\n" }
        if let d = c.discussion, !d.isEmpty { out += d + "\n\n" }
        let subs = visible(c.subcommands)
        if !subs.isEmpty {
            out += "Subcommands: " + subs.map { "[`\($0.commandName)`](#\(anchor(p + [$0.commandName])))" }.joined(separator: ", ") + ".\n"
        } else {
            let args = shown(c.arguments)
            out += "```\n" + ([p.joined(separator: " ")] + args.map(usage)).joined(separator: " ") + "\n```\n"
            if !args.isEmpty {
                out += "\n| Argument | Meaning | Default |\n|---|---|---|\n"
                for a in args {
                    let cells = ["`\(label(a))`", meaning(a), a.defaultValue.map { "`\($0)`" } ?? ""]
                    out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
                }
            }
        }
        for s in subs { out += section(s, path: p) }
        return out
    }

    /// `--name <value>`, `-f, --force`, `<file>`.
    private static func label(_ a: Argument) -> String {
        let value = "<\(a.valueName ?? "value")>"
        if a.kind == "positional" { return value + (a.isRepeating ? " …" : "") }
        let names = (a.names ?? []).map { ($0.kind == "short" ? "-" : "--") + $0.name }.joined(separator: ", ")
        return a.kind == "option" ? names + " " + value : names
    }

    private static func usage(_ a: Argument) -> String {
        let value = "<\(a.valueName ?? "value")>"
        let longest = (a.names ?? []).first { $0.kind != "short" } ?? a.names?.first
        let name = longest.map { ($0.kind == "short" ? "-" : "--") + $0.name } ?? ""
        var s = a.kind == "positional" ? value : a.kind == "option" ? name + " " + value : name
        if a.isRepeating { s += " …" }
        return a.isOptional ? "[\(s)]" : s
    }

    private static func meaning(_ a: Argument) -> String {
        var parts: [String] = []
        if let s = a.abstract, !s.isEmpty { parts.append(s) }
        if let d = a.discussion, !d.isEmpty { parts.append(d) }
        if a.kind == "option" && !a.isOptional { parts.append("Required.") }
        if a.isRepeating && a.kind != "positional" && !(a.abstract ?? "").contains("repeatable") { parts.append("Repeatable.") }
        if let v = a.allValues, !v.isEmpty { parts.append("One of: " + v.joined(separator: ", ") + ".") }
        return parts.joined(separator: " ").replacingOccurrences(of: "\n", with: " ")
    }

    private static let intro = """
    # CLI reference

    <!-- Generated by `portal docs cli` from the argument parser; do not edit by hand
         (scripts/docs.sh regenerates it; a test fails when it is stale). -->

    One binary: `portal serve` runs the server; every other command is one action on the same
    database, and can run while the server does. Every command takes `-h` / `--help`.

    **What a command needs.** `--config FILE` (default: `$PORTAL_CONFIG`, else the built-in
    defaults) names the same configuration the server runs with, and the same environment
    overrides apply (`PORTAL_DATA_DIR`, `PORTAL_DATABASE_URL`, …): that is how a command finds the
    database. Every command that opens the database also needs the server's **key-encryption key**
    — `PORTAL_KEY_ENCRYPTION_KEY` or the file in `signing.encryption_key_file` — because it opens
    the secrets sealed with it; without it, or with another one, it stops with `signing keys in
    the database are encrypted, but no key-encryption key is configured` (or `… were encrypted
    with another key-encryption key`). Secrets (passwords, client secrets) are read from standard
    input, never from the command line. Errors exit with status 1; a configuration problem with 2 (except
    `check-config`, which exits 1 when it finds problems);
    a wrong option with 64.

    **Built in, without a configuration file.** The public client `kubernetes` (what kubectl uses;
    redirect URIs `http://localhost:8000` and `http://localhost:18000`) always exists unless the
    configuration declares one with that id; `client list` shows it. Client secrets are at least 32
    characters (`openssl rand -base64 32`).

    ## Shell completion

    `portal --generate-completion-script bash|zsh|fish` prints a completion script for every
    command and option below. Install it where your shell looks:

    ```bash
    # bash (needs the bash-completion package)
    portal --generate-completion-script bash > ~/.local/share/bash-completion/completions/portal
    #   or, for everyone: sudo sh -c 'portal --generate-completion-script bash > /etc/bash_completion.d/portal'
    # zsh: a directory in $fpath, then compinit (in ~/.zshrc: fpath=(~/.zfunc $fpath); autoload -Uz compinit; compinit)
    mkdir -p ~/.zfunc && portal --generate-completion-script zsh > ~/.zfunc/_portal
    # fish
    portal --generate-completion-script fish > ~/.config/fish/completions/portal.fish
    ```

    Open a new shell afterwards. Regenerate the script after upgrading the portal.

    """
}
