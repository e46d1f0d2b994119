import ArgumentParser

/// Renders the generated documentation (scripts/docs.sh writes it into the checkout; tests check
/// the committed files are current). Hidden: it is for the people who change the portal.
struct DocsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docs", abstract: "Print generated documentation.", shouldDisplay: false,
        subcommands: [ConfigExample.self, ConfigReference.self, CLI.self])

    struct ConfigExample: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "config-example",
                                                        abstract: "The example configuration file: every key with its default (deploy/portal.example.yaml).")
        func run() { print(ConfigDocs.exampleYAML(), terminator: "") }
    }

    struct ConfigReference: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "config-reference",
                                                        abstract: "The configuration reference in Markdown (docs/configuration.md).")
        func run() { print(ConfigDocs.referenceMarkdown(), terminator: "") }
    }

    struct CLI: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cli", abstract: "The CLI reference in Markdown (docs/cli.md).")
        func run() throws { print(try CLIReference.markdown(), terminator: "") }
    }
}
