# Shared helpers for the run and test scripts. Source it; do not execute it.

# Installs Debian packages that are missing (apt never starts services here).
ensure_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A Python virtual environment with the test tooling, in .build-venv (ignored by git).
ensure_venv() {
  local venv="$ROOT/.build-venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating Python venv for test tooling"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import authlib, pytest, requests, joserfc, yaml, kubernetes_validate, selenium, axe_core_python, kubernetes, PIL, pyotp, celpy" 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/Tests/blackbox/requirements.txt"
  fi
  PY="$venv/bin/python"
}

require_swift() {
  command -v swift >/dev/null || { echo "swift is not on PATH: install the Swift toolchain (6.2 or newer) first" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A private PostgreSQL cluster on a loopback port in a temp dir (trust auth: a throwaway test
# cluster only). Exports PORTAL_TEST_POSTGRES_URL; stop_postgres removes everything.
start_postgres() {
  ensure_apt postgresql
  PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  PGDIR="$(mktemp -d /tmp/portal-pg.XXXXXX)"
  PGPORT="$(free_port)"
  local as=""
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$PGDIR"; as="su postgres -c"; else as="bash -c"; fi
  $as "$PGBIN/initdb -D $PGDIR/data -A trust -U portal >/dev/null"
  $as "$PGBIN/pg_ctl -D $PGDIR/data -o '-k $PGDIR -h 127.0.0.1 -p $PGPORT -c max_connections=400 -c fsync=${PG_FSYNC:-off}' -l $PGDIR/log -w start >/dev/null"
  export PORTAL_TEST_POSTGRES_URL="postgres://portal@127.0.0.1:$PGPORT/postgres"
  echo "==> PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"
}

stop_postgres() {
  [ -n "${PGDIR:-}" ] || return 0
  local as="bash -c"; [ "$(id -u)" -eq 0 ] && as="su postgres -c"
  $as "$PGBIN/pg_ctl -D $PGDIR/data -m immediate -w stop >/dev/null" || true
  rm -rf "$PGDIR"
  PGDIR=""
}
