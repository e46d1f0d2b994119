"""Back up, restore and move the data (issue 14 §5), with real processes: a portal on SQLite with
a live kubectl-style refresh family and a robot credential is backed up under refresh load,
migrated to a real PostgreSQL, and served there by two replicas — the same refresh token
refreshes and the robot's TokenReview still authenticates."""
import os
import secrets
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import Portal
from test_replicas import PG, code_flow, login_session, psql, refresh

pytestmark = pytest.mark.skipif(not PG, reason="PORTAL_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
PASSWORD = "replica-user-password"
WEBHOOK_TOKEN = secrets.token_hex(24)
KEK = "kek-" + secrets.token_hex(20)


def review(p, token):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    return requests.post(p.base + "/webhook/tokenreview", json=body, headers={"Authorization": "Bearer " + WEBHOOK_TOKEN}).json()["status"]


def live_tokens_per_family_sqlite(path):
    with sqlite3.connect(path) as c:
        rows = c.execute("SELECT f.id, (SELECT count(*) FROM refresh_tokens t WHERE t.family_id = f.id AND t.used_at IS NULL) "
                         "FROM refresh_families f WHERE f.revoked_at IS NULL").fetchall()
    return dict(rows)


@pytest.fixture
def pg_database():
    name = "portal_mig_" + uuid.uuid4().hex[:10]
    psql(PG, f"CREATE DATABASE {name}")
    yield PG.rsplit("/", 1)[0] + "/" + name
    psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_backup_under_load_migrate_to_postgres_and_keep_sessions_and_robots(tmp_path, pg_database):
    (tmp_path / "webhook").write_text(WEBHOOK_TOKEN + "\n")
    extra = f"webhook:\n  bearer_token_file: {tmp_path / 'webhook'}\nsigning:\n  check_interval: 1s\n"
    env = {"PORTAL_KEY_ENCRYPTION_KEY": KEK}
    a = Portal(extra_yaml=extra, env=env)
    try:
        assert a.cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        assert a.cli("robot", "add", "ci-deployer", "--team", "platform", "--group", "deployers").returncode == 0
        r = a.cli("credential", "create", "--robot", "ci-deployer", "--name", "pipeline", "--expires", "30d")
        robot_token = r.stdout.strip().splitlines()[0]
        assert robot_token.startswith("kpc_") and review(a, robot_token)["authenticated"] is True
        session = login_session(a)
        kubectl = code_flow(a, session)      # what kubectl holds: an id_token and a refresh token
        kubectl_refresh = refresh(a, kubectl["refresh_token"]).json()["refresh_token"]

        # A backup while refresh traffic runs: consistent (one live token per family).
        busy = [code_flow(a, session)["refresh_token"] for _ in range(4)]
        stop = threading.Event()

        def churn(i):
            while not stop.is_set():
                r = refresh(a, busy[i])
                if r.status_code == 200:
                    busy[i] = r.json()["refresh_token"]

        threads = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        backup = tmp_path / "backup.sqlite"
        r = a.cli("backup", str(backup))
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert r.returncode == 0, r.stderr
        assert oct(os.stat(backup).st_mode & 0o777) == "0o600"
        live = live_tokens_per_family_sqlite(str(backup))
        assert len(live) == 5 and set(live.values()) == {1}, live
        # A second backup to the same file needs --force.
        assert a.cli("backup", str(backup)).returncode != 0
    finally:
        a.stop()

    # Move to PostgreSQL (the server is stopped, as the README says).
    r = a.cli("migrate", "--to", pg_database)
    assert r.returncode == 0, r.stderr
    assert "refresh_families" in r.stdout and "signing_keys" in r.stdout and "audit_events" in r.stdout
    # Migrating again into the now non-empty database is refused, and changes nothing.
    again = a.cli("migrate", "--to", pg_database)
    assert again.returncode != 0 and "not empty" in again.stderr
    before = psql(pg_database, "SELECT count(*) FROM audit_events")

    b = Portal(extra_yaml=extra, issuer=a.issuer, database_url=pg_database, expect_setup_link=False, env=env)
    c = Portal(extra_yaml=extra, issuer=a.issuer, database_url=pg_database, expect_setup_link=False, env=env)
    try:
        # kubectl's next refresh, with the token it held on SQLite, works on a PostgreSQL replica.
        r = refresh(b, kubectl_refresh)
        assert r.status_code == 200, r.text
        assert refresh(c, r.json()["refresh_token"]).status_code == 200
        # The robot's credential still authenticates, on either replica.
        st = review(c, robot_token)
        assert st["authenticated"] is True and st["user"]["username"] == "oidc:robot:ci-deployer"
        # The same signing keys (still sealed): the old id_token's key is in the new JWKS.
        import json, base64
        kid = json.loads(base64.urlsafe_b64decode(kubectl["id_token"].split(".")[0] + "=="))["kid"]
        assert kid in [k["kid"] for k in requests.get(b.base + "/keys").json()["keys"]]
        assert all(v.startswith("aesgcm:v2:") for v in psql(pg_database, "SELECT sealed_private_key FROM signing_keys").split())
        # The audit log came along (and new events get new ids).
        assert int(psql(pg_database, "SELECT count(*) FROM audit_events")) > int(before) > 5
        assert "ci-deployer" in b.cli("audit", "--limit", "1000").stdout

        # Restoring the backup into the non-empty PostgreSQL database is refused unless forced.
        r = b.cli("restore", str(backup))
        assert r.returncode != 0 and "not empty" in r.stderr
    finally:
        b.stop()
        c.stop()
    r = b.cli("restore", str(backup), "--force")
    assert r.returncode == 0, r.stderr
    assert int(psql(pg_database, "SELECT count(*) FROM refresh_families WHERE revoked_at IS NULL")) == 5


def test_restore_into_a_running_sqlite_server_is_refused(tmp_path):
    p = Portal()
    try:
        backup = tmp_path / "b.sqlite"
        assert p.cli("backup", str(backup)).returncode == 0
        r = p.cli("restore", str(backup), "--force")
        assert r.returncode != 0 and "Stop it before restoring" in r.stderr, r.stderr
    finally:
        p.stop()
    r = p.cli("restore", str(backup))
    assert r.returncode != 0 and "not empty" in r.stderr
    r = p.cli("restore", str(backup), "--force")
    assert r.returncode == 0, r.stderr
