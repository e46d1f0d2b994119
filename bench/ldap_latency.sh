#!/usr/bin/env bash
# Prints p50/p99 of the latency a portal LDAP password login adds over a bare `ldapwhoami`.
# Starts its own slapd and portal on loopback. N=500 bench/ldap_latency.sh for more rounds.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
require_swift
cd "$ROOT"
ensure_apt python3-venv openssl libldap2-dev slapd ldap-utils
ensure_venv
if [ -z "${PORTAL_BIN:-}" ]; then
  swift build --product portal
  PORTAL_BIN="$ROOT/.build/debug/portal"
fi
PORTAL_BIN="$PORTAL_BIN" exec "$PY" "$ROOT/bench/ldap_latency.py"
