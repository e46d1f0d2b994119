#!/usr/bin/env bash
# TokenReview webhook throughput and latency (p50/p99) for a valid and an invalid credential,
# over keep-alive connections with wrk. Not part of the test command.
#   bench/webhook_bench.sh            # release build (the first one takes ~15 minutes on 2 cores)
#   BUILD=debug bench/webhook_bench.sh
# Env: DURATION (default 10s), CONNECTIONS (default 32), THREADS (default 2).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
ensure_apt wrk
BUILD="${BUILD:-release}"
cd "$ROOT"
swift build -c "$BUILD" --product portal >/dev/null
BIN="$(swift build -c "$BUILD" --show-bin-path)/portal"
DIR="$(mktemp -d /tmp/portal-bench.XXXXXX)"
PORT="$(free_port)"
openssl rand -hex 24 > "$DIR/webhook.token"
cat > "$DIR/portal.yaml" <<CONF
issuer: http://127.0.0.1:$PORT
listen: 127.0.0.1:$PORT
data_dir: $DIR/data
log: {level: warning}
webhook:
  bearer_token_file: $DIR/webhook.token
CONF
"$BIN" robot add bench --team bench --group bench --config "$DIR/portal.yaml" >/dev/null
GOOD="$("$BIN" credential create --robot bench --name bench --expires 1d --config "$DIR/portal.yaml" 2>/dev/null)"
BAD="kpc_0000000000000000_$(printf '%043d' 0)000000"
"$BIN" serve --config "$DIR/portal.yaml" >/dev/null 2>"$DIR/portal.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.1; done

run() {
  local label="$1" token="$2"
  cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $(cat "$DIR/webhook.token")"
wrk.body = '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"$token"}}'
LUA
  local out
  out="$(wrk -t"${THREADS:-2}" -c"${CONNECTIONS:-32}" -d"${DURATION:-10s}" --latency -s "$DIR/post.lua" "http://127.0.0.1:$PORT/webhook/tokenreview")"
  local rps p50 p99
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
  p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
  printf '%-22s %10s req/s   p50 %8s   p99 %8s\n' "$label" "$rps" "$p50" "$p99"
}
echo "TokenReview webhook, $BUILD build, ${CONNECTIONS:-32} connections, ${DURATION:-10s} each, $(nproc) cores"
run "valid credential" "$GOOD"
run "invalid credential" "$BAD"
RSS="$(awk '/VmHWM/ {print $2}' /proc/$PID/status)"
echo "portal peak RSS: $((RSS / 1024)) MB"
