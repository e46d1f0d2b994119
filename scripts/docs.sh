#!/usr/bin/env bash
# Regenerates the documentation rendered from the code: the example configuration, the
# configuration reference and the CLI reference. Tests fail when the committed files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product portal --quiet
bin="$(swift build --show-bin-path)/portal"
"$bin" docs config-example > deploy/portal.example.yaml
"$bin" docs config-reference > docs/configuration.md
"$bin" docs cli > docs/cli.md
echo "updated deploy/portal.example.yaml docs/configuration.md docs/cli.md"
