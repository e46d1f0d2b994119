#!/usr/bin/env bash
# Builds and runs the portal on its embedded default: http://localhost:8080, SQLite in ./portal-data.
# Extra arguments go to `portal serve` (e.g. --config portal.yaml).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
require_swift
ensure_apt libldap2-dev     # the portal links libldap (LDAP logins)
ensure_apt libkrb5-dev      # the portal links libgssapi_krb5 (Kerberos/SPNEGO logins)
ensure_apt libsqlite3-dev   # the embedded database
ensure_apt libssl-dev       # OpenSSL's libcrypto signs RS256 tokens
ensure_apt zlib1g-dev       # zlib gzips pages and static files
cd "$ROOT"
echo "==> building portal (the first build takes several minutes)"
swift build --product portal
exec "$ROOT/.build/debug/portal" serve "$@"
