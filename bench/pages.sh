#!/usr/bin/env bash
# Page weight (HTML + CSS + JS, < 100 KB each) and time to first byte on loopback for the main pages.
# Starts its own portal. N=50 bench/pages.sh for more rounds; PORTAL_BIN=… for another build. Not part of the test command.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
require_swift
cd "$ROOT"
ensure_apt python3-venv openssl
ensure_venv
if [ -z "${PORTAL_BIN:-}" ]; then
  swift build --product portal >/dev/null
  PORTAL_BIN="$ROOT/.build/debug/portal"
fi
PORTAL_BIN="$PORTAL_BIN" exec "$PY" "$ROOT/bench/pages.py"
