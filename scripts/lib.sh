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
  if ! "$venv/bin/python" -c "import authlib, pytest, requests, joserfc, yaml" 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/Tests/blackbox/requirements.txt"
  fi
  PY="$venv/bin/python"
}

require_swift() {
  command -v swift >/dev/null || { echo "swift is not on PATH: install the Swift toolchain (6.2 or newer) first" >&2; exit 1; }
}
