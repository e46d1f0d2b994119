#!/usr/bin/env bash
# The benchmark suite: one command from a clean checkout (not part of the test command).
#   bash bench/run.sh            # full run: release build, SQLite and PostgreSQL, ≈ 9 minutes after the build
#   bash bench/run.sh --quick    # smoke mode: short scenarios, SQLite only
# Builds in release mode (440 s cold on 2 cores, measured from a fresh clone), measures the reference limits (openssl speed,
# a hello-world route on the same HTTP stack, bcrypt at the configured cost), runs every scenario with
# wrk over keep-alive connections, prints the table and the targets, and writes bench/results/latest.{md,json}.
# Extra arguments go to bench/suite.py (e.g. --duration 20 --connections 32). Set NO_POSTGRES=1 to skip
# PostgreSQL. Exit status 3 means a target was missed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
require_swift
cd "$ROOT"

ensure_apt python3-venv curl openssl wrk libldap2-dev libkrb5-dev libsqlite3-dev libssl-dev
ensure_venv

QUICK=()
POSTGRES=1
if [ "${1:-}" = "--quick" ]; then
  shift
  QUICK=(--duration 3 --login-seconds 5 --parallel-rounds 10 --openssl-seconds 1)
  POSTGRES=0
fi
[ -n "${NO_POSTGRES:-}" ] && POSTGRES=0

echo "==> building portal (release)"
swift build -c release --product portal
swift build -c release --product kubectl-portal
BIN="$(swift build -c release --show-bin-path)/portal"

PG=()
if [ "$POSTGRES" = 1 ]; then
  PG_FSYNC=on start_postgres   # durable commits, as in production (the tests run with fsync=off)
  trap stop_postgres EXIT
  PG=(--postgres "$PORTAL_TEST_POSTGRES_URL" --psql "$PGBIN/psql")
fi

"$PY" "$ROOT/bench/suite.py" --bin "$BIN" --plugin "$(dirname "$BIN")/kubectl-portal" "${PG[@]}" "${QUICK[@]}" "$@"
