#!/usr/bin/env bash
# Revoke on replica A, and how soon replica B's TokenReview cache refuses it: 1,000 trials under a
# wrk load of reviews on B (bench/revocation_latency.py). Starts a private PostgreSQL (durable commits,
# as in production; PG_FSYNC=off to change) and two portals on it.
#   PORTAL_BIN=.build/release/portal bash bench/revocation_latency.sh [--trials N] [--mode revoke|rotate] [--cache-ttl 10s]
# Without PORTAL_BIN it builds the release binary first. Not part of the test command.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
cd "$ROOT"
ensure_apt python3-venv wrk postgresql
ensure_venv
if [ -z "${PORTAL_BIN:-}" ]; then
  require_swift
  swift build -c release --product portal
  PORTAL_BIN="$(swift build -c release --show-bin-path)/portal"
fi
PG_FSYNC="${PG_FSYNC:-on}" start_postgres
trap stop_postgres EXIT
PORTAL_BIN="$PORTAL_BIN" "$PY" "$ROOT/bench/revocation_latency.py" --psql "$PGBIN/psql" "$@"
