#!/usr/bin/env bash
# Runs the whole test suite: Swift unit, storage conformance and HTTP tests, then the
# black-box tests that drive a real `portal serve` process with real clients.
# Installs what it needs; every server it starts listens on loopback and is stopped at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
require_swift
cd "$ROOT"

ensure_apt python3-venv curl libcurl4 openssl libsqlite3-dev libssl-dev zlib1g-dev
# LDAP: libldap headers to build the CLDAP shim; slapd and ldap-utils for Tests/blackbox/test_ldap.py.
ensure_apt libldap2-dev slapd ldap-utils
# Kerberos: GSSAPI headers for the CGSSAPI shim; a private MIT KDC, kinit/curl --negotiate and
# headless Chromium for Tests/blackbox/test_kerberos.py.
ensure_apt libkrb5-dev krb5-kdc krb5-admin-server krb5-user chromium chromium-driver libsasl2-modules-gssapi-mit zbar-tools
# A real relying party for logout, revocation and back-channel tests: Apache httpd with mod_auth_openidc,
# started by Tests/blackbox/rp_apache.py with its own config on a loopback port (the packaged service is not used).
ensure_apt apache2 libapache2-mod-auth-openidc
ensure_venv

start_postgres
trap stop_postgres EXIT

echo "==> building (with tests)"
swift build --build-tests

echo "==> swift tests (storage conformance on SQLite and PostgreSQL)"
swift test --skip-build

echo "==> black-box tests against a real portal process"
PORTAL_BIN="$ROOT/.build/debug/portal" "$PY" -m pytest -q -p no:cacheprovider "$ROOT/Tests/blackbox"
