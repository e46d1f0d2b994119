"""A dead database is a fast, clear failure, and recovery is quick (issue 14 §1, §6): two real
replicas on a private PostgreSQL cluster that this test stops and starts (`pg_ctl`), with
refresh traffic running through the outage."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import PORTAL_BIN, RP_SECRET, Portal
from test_replicas import code_flow, login_session, psql, refresh

PASSWORD = "replica-user-password"
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1] if glob.glob("/usr/lib/postgresql/*/bin") else None
pytestmark = pytest.mark.skipif(not BIN, reason="PostgreSQL server binaries are not installed (scripts/test.sh installs them)")


class PrivateCluster:
    """initdb + pg_ctl on a loopback port in a temp dir (trust auth: a throwaway cluster)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portal-outage-pg-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.sh(f"{BIN}/initdb -D {self.dir}/data -A trust -U portal >/dev/null")
        self.start()
        self.url = f"postgres://portal@127.0.0.1:{self.port}/postgres"

    def sh(self, cmd):
        args = ["su", "postgres", "-c", cmd] if self.as_root else ["bash", "-c", cmd]
        subprocess.run(args, check=True, capture_output=True, timeout=60)

    def start(self):
        self.sh(f"{BIN}/pg_ctl -D {self.dir}/data -o '-k {self.dir} -h 127.0.0.1 -p {self.port} -c fsync=off' -l {self.dir}/log -w start")

    def stop(self):
        self.sh(f"{BIN}/pg_ctl -D {self.dir}/data -m fast -w stop")

    def close(self):
        try:
            self.sh(f"{BIN}/pg_ctl -D {self.dir}/data -m immediate -w stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = PrivateCluster()
    yield c
    c.close()


@pytest.fixture(scope="module")
def replicas(cluster):
    extra = "signing:\n  check_interval: 1s\ntokens:\n  refresh_grace_window: 10s\n"
    opts = "  acquire_timeout: 2s\n"
    a = Portal(extra_yaml=extra, database_url=cluster.url, database_options=opts)
    b = Portal(extra_yaml=extra, issuer=a.issuer, database_url=cluster.url, expect_setup_link=False, database_options=opts)
    r = a.cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    yield a, b
    for p in (a, b):
        if p.proc.poll() is None:
            p.stop()


class RefreshTraffic:
    """Threads that keep refreshing their families (each on its replica) and record every outcome."""

    def __init__(self, pairs):
        self.pairs = [list(x) for x in pairs]          # [portal, token]
        self.outcomes, self.stop_event, self.lock = [], threading.Event(), threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(len(self.pairs))]
        for t in self.threads:
            t.start()

    def run(self, i):
        while not self.stop_event.is_set():
            with self.lock:
                p, t = self.pairs[i]
            try:
                r = refresh(p, t)
            except requests.RequestException as e:
                self.outcomes.append(("client-timeout", repr(e)))
                continue
            self.outcomes.append((r.status_code, r.json().get("error")))
            if r.status_code == 200:
                with self.lock:
                    self.pairs[i][1] = r.json()["refresh_token"]
            time.sleep(0.02)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=15)
        assert not [o for o in self.outcomes if o[0] == "client-timeout"], [o for o in self.outcomes if o[0] == "client-timeout"][:3]
        assert all(o[0] in (200, 503) for o in self.outcomes), sorted(set(self.outcomes))
        assert (200, None) in self.outcomes

    def tokens(self):
        with self.lock:
            return [(p, t) for p, t in self.pairs]


def live_tokens_per_family(url):
    rows = psql(url, "SELECT family_id, count(*) FILTER (WHERE used_at IS NULL) FROM refresh_tokens "
                     "WHERE family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL) GROUP BY family_id")
    return {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines() if line}


def test_database_outage_is_fast_and_clear_and_recovery_is_quick(cluster, replicas):
    a, b = replicas
    session = login_session(a)
    traffic = RefreshTraffic([(p, code_flow(p, session)["refresh_token"]) for p in (a, b)])
    tokens = dict(traffic.tokens())
    time.sleep(1)
    cluster.stop()
    stopped = time.time()
    try:
        # Every request answers (the client gives up at 10 s; acquire_timeout is 2 s), with a 503.
        r = refresh(a, tokens[a])
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        assert r.headers["Cache-Control"] == "no-store"
        # Revocation and introspection never answer as if they had done their work (RFC 7009 §2.2.1).
        r = requests.post(a.base + "/revoke", data={"token": tokens[a], "client_id": "rp-public"}, timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        r = requests.post(a.base + "/introspect", data={"token": tokens[a]}, auth=("rp-confidential", RP_SECRET), timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        # /readyz within a second, naming the database.
        r = requests.get(b.base + "/readyz", timeout=2)
        assert r.status_code == 503, r.text
        assert r.json()["checks"]["database"] == "unavailable" and r.json()["checks"]["signing_key"] == "ok"
        # The sign-in page: the same friendly 503 as a directory outage, not a generic 500.
        s = requests.Session()
        page = s.get(a.base + "/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = s.post(a.base + "/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD}, timeout=10)
        assert r.status_code == 503 and "Sign-in is unavailable" in r.text and "Request ID" in r.text, r.status_code
        # The CLI: a one-line error naming the database, within seconds.
        cli = subprocess.run([PORTAL_BIN, "user", "add", "bob", "--password-stdin", "--config", a.config], input=PASSWORD + "\n",
                             capture_output=True, text=True, timeout=20, env=a.env)
        assert cli.returncode != 0
        assert f"127.0.0.1:{cluster.port}" in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        # Twenty seconds down: long enough for PostgresNIO's reconnect backoff to reach ~9 s.
        time.sleep(max(0.0, 20 - (time.time() - stopped)))
    finally:
        cluster.start()
    back = time.time()
    # Recovery: both replicas serve again within seconds of the database returning.
    for p in (a, b):
        while True:
            r = requests.get(p.base + "/readyz", timeout=2)
            if r.status_code == 200:
                break
            assert time.time() - back < 10, f"{p.base} not ready 10 s after the database returned: {r.text}"
            time.sleep(0.2)
    recovered = time.time() - back
    print(f"replicas ready {recovered:.1f} s after PostgreSQL returned")
    assert recovered < 5, f"recovery took {recovered:.1f} s"
    for p in (a, b):
        assert "connection pool replaced" in p.logs(), "the watchdog did not revive the pool"
    time.sleep(2)
    # Nothing but successes and clean 503s: no 500, no replay, no client timeouts.
    traffic.stop()
    assert (503, "temporarily_unavailable") in traffic.outcomes
    # The families lived through it: one live token each, and they refresh on.
    for p, t in traffic.tokens():
        assert refresh(p, t).status_code == 200
    assert set(live_tokens_per_family(cluster.url).values()) == {1}
    assert "token.replay" not in a.cli("audit", "--type", "token.replay").stdout


def test_a_refresh_cut_off_mid_flight_and_retried_keeps_its_family(replicas):
    a, b = replicas
    family_token = code_flow(a, login_session(a))["refresh_token"]
    # Send the refresh and hang up before the answer (a client that gave up on a slow request).
    body = f"grant_type=refresh_token&refresh_token={family_token}&client_id=rp-public".encode()
    with socket.create_connection(("127.0.0.1", a.port)) as s:
        s.sendall(b"POST /token HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(0.5)   # the rotation commits on the server although nobody reads the answer
    # The retry with the same token, on the other replica, gets the successor (grace window), not a replay.
    r = refresh(b, family_token)
    assert r.status_code == 200, r.text
    successor = r.json()["refresh_token"]
    again = refresh(a, family_token)
    assert again.status_code == 200 and again.json()["refresh_token"] == successor, "one successor, whoever asks"
    assert refresh(a, successor).status_code == 200, "the family lives on"
    events = a.cli("audit", "--type", "token.refresh", "--json").stdout
    assert '"grace":"true"' in events.replace(" ", "")
    assert "token.replay" not in a.cli("audit", "--type", "token.replay").stdout


def test_postgresql_restarted_in_the_middle_of_transactions_loses_and_doubles_nothing(cluster, replicas):
    a, b = replicas
    session = login_session(a)
    traffic = RefreshTraffic([(p, code_flow(p, session)["refresh_token"]) for p in (a, b, a, b)])
    time.sleep(1)
    # Immediate mode: the server dies with transactions open (no clean shutdown), then comes back.
    cluster.sh(f"{BIN}/pg_ctl -D {cluster.dir}/data -m immediate -w restart -l {cluster.dir}/log -o '-k {cluster.dir} -h 127.0.0.1 -p {cluster.port} -c fsync=off'")
    time.sleep(4)
    traffic.stop()
    # Every family still refreshes with the token its client holds, and has exactly one live token.
    for p, t in traffic.tokens():
        assert refresh(p, t).status_code == 200
    assert set(live_tokens_per_family(cluster.url).values()) == {1}
    assert "token.replay" not in a.cli("audit", "--type", "token.replay").stdout
