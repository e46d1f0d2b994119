"""Several portal replicas on one PostgreSQL: every guarantee holds across them.
Needs PORTAL_TEST_POSTGRES_URL (scripts/test.sh starts a private PostgreSQL)."""
import base64
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from conftest import CALLBACK, Portal

PG = os.environ.get("PORTAL_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG, reason="PORTAL_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
PASSWORD = "replica-user-password"


def psql(url, sql):
    return subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def database():
    name = "portal_bb_" + uuid.uuid4().hex[:12]
    psql(PG, f"CREATE DATABASE {name}")
    url = PG.rsplit("/", 1)[0] + "/" + name
    yield url
    psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def replicas(database):
    extra = "signing:\n  check_interval: 1s\n  publish_ahead: 0s\ntokens:\n  refresh_grace_window: 10s\n"
    a = Portal(extra_yaml=extra, database_url=database)
    b = Portal(extra_yaml=extra, issuer=a.issuer, database_url=database, expect_setup_link=False)
    r = a.cli("user", "add", "alice", "--password-stdin", "--group", "dev", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    yield a, b
    for p in (a, b):
        if p.proc.poll() is None:
            assert p.stop() == 0


def login_session(portal):
    s = requests.Session()
    page = s.get(portal.base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(portal.base + "/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 303
    return s


def code_flow(portal, session):
    """Authorization code + PKCE through `portal` with an existing browser session (no password)."""
    rp = OAuth2Session("rp-public", redirect_uri=CALLBACK, scope="openid groups", code_challenge_method="S256",
                       token_endpoint_auth_method="none")
    verifier = generate_token(48)
    url, _ = rp.create_authorization_url(portal.base + "/authorize", code_verifier=verifier)
    r = session.get(url, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(CALLBACK), r.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    r = requests.post(portal.base + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                    "code_verifier": verifier, "client_id": "rp-public"})
    assert r.status_code == 200, r.text
    return r.json()


def refresh(portal, token):
    return requests.post(portal.base + "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "rp-public"},
                         timeout=10)


def kid_of(jwt):
    header = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def test_login_on_a_refresh_on_b_replay_on_a_kills_the_family_everywhere(replicas):
    a, b = replicas
    session = login_session(a)
    # The login session works on B too: no sticky sessions.
    tokens = code_flow(b, session)
    r = refresh(b, tokens["refresh_token"])
    assert r.status_code == 200
    successor = r.json()["refresh_token"]
    # Parallel-kubectl grace: the same client replaying within the window gets the same successor.
    again = refresh(a, tokens["refresh_token"])
    assert again.status_code == 200 and again.json()["refresh_token"] == successor
    time.sleep(19)  # past the grace window (10 s here) and the slack for bounded storage waits (acquire_timeout 3 s + 5 s)
    r = refresh(a, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    for p in (a, b):
        r = refresh(p, successor)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_admin_revocation_on_a_bites_on_b_at_once(replicas):
    a, b = replicas
    tokens = code_flow(a, login_session(a))
    r = a.cli("user", "add", "carol", "--password-stdin", stdin="carol-password-1\n")
    assert r.returncode == 0
    assert a.cli("user", "disable", "alice").returncode == 0
    try:
        r = refresh(b, tokens["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        info = requests.get(b.base + "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert info.status_code == 401
    finally:
        assert a.cli("user", "enable", "alice").returncode == 0


class CachingVerifier:
    """A verifier that honours the JWKS Cache-Control max-age strictly: it refetches only when
    its copy has expired, never on an unknown kid — the worst case any relying party may be in."""

    def __init__(self, base):
        self.base, self.keys, self.expires = base, {}, 0.0

    def verify(self, jwt):
        if time.time() >= self.expires:
            r = requests.get(self.base + "/keys")
            max_age = int(re.search(r"max-age=(\d+)", r.headers["Cache-Control"]).group(1))
            self.keys = {k["kid"]: k for k in r.json()["keys"]}
            self.expires = time.time() + max_age
        from joserfc import jwt as jose_jwt
        from joserfc.jwk import KeySet
        kid = kid_of(jwt)
        assert kid in self.keys, f"token signed with {kid}, which the verifier's cached JWKS does not hold"
        jose_jwt.decode(jwt, KeySet.import_key_set({"keys": [self.keys[kid]]}))


def test_a_key_never_signs_before_verifiers_holding_a_cached_jwks_can_have_it(replicas):
    """Routine rotations right after start (twice in a row): the next key was published seconds
    earlier, so it must not sign before the JWKS max-age plus the replicas' check interval has
    passed — verifiers holding a cached JWKS verify every token minted meanwhile, on both replicas."""
    a, b = replicas
    verifiers = {p: CachingVerifier(p.base) for p in (a, b)}
    sessions = {p: login_session(p) for p in (a, b)}
    for p in (a, b):
        verifiers[p].verify(code_flow(p, sessions[p])["id_token"])
    first = a.cli("keys", "rotate")
    assert first.returncode == 0, first.stderr
    second = a.cli("keys", "rotate")
    assert second.returncode == 0, second.stderr
    m = re.search(r"key (\S+) will sign at \S+ \((\d+) s from now\)", second.stdout)
    assert m, second.stdout       # just published: it waits
    newest, wait = m.group(1), int(m.group(2))
    # At most JWKS max-age 60 s + check_interval 1 s after it was published (minus what already passed).
    assert 0 < wait <= 61, second.stdout
    # Mint and verify on both replicas until the newest key has taken over: every token verifies
    # against each verifier's cached JWKS.
    deadline = time.time() + wait + 4
    kids = set()
    while time.time() < deadline:
        for p in (a, b):
            t = code_flow(p, sessions[p])["id_token"]
            verifiers[p].verify(t)
            kids.add(kid_of(t))
        time.sleep(2)
    assert newest in kids, f"the rotated key never signed: {kids}"
    for p in (a, b):
        assert kid_of(code_flow(p, sessions[p])["id_token"]) == newest
    assert "routine" in a.cli("audit", "--type", "admin.keys.rotate").stdout


def test_kill_9_during_refresh_traffic_leaves_every_family_consistent(replicas, database):
    a, b = replicas
    session = login_session(b)
    families = [code_flow(b, session)["refresh_token"] for _ in range(12)]
    current = list(families)
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def churn(i):
        while not stop.is_set():
            with lock:
                token = current[i]
            try:
                r = refresh(a, token)
            except requests.RequestException:
                return  # A died mid-request: the client keeps its last token
            if r.status_code != 200:
                errors.append(r.text)
                return
            with lock:
                current[i] = r.json()["refresh_token"]

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(len(current))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    a.kill()
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors
    # In the database every family is alive with exactly one unused token: never neither, never both.
    import hashlib
    for first in families:
        h = hashlib.sha256(first.encode()).hexdigest()
        fid = psql(database, f"SELECT family_id FROM refresh_tokens WHERE hash = '{h}'")
        row = psql(database, f"SELECT f.revoked_at IS NULL, count(*) FILTER (WHERE t.used_at IS NULL) FROM refresh_families f "
                             f"JOIN refresh_tokens t ON t.family_id = f.id WHERE f.id = '{fid}' GROUP BY f.revoked_at")
        assert row == "t|1", (fid, row)
    # Each client's last token (maybe the one whose answer was lost) still works on B, within the grace window.
    for token in current:
        r = refresh(b, token)
        assert r.status_code == 200, r.text
        r = refresh(b, r.json()["refresh_token"])
        assert r.status_code == 200, r.text
    a.start()  # bring A back for the fixture's clean stop


def test_second_server_on_one_sqlite_database_refuses_to_start():
    p = Portal()
    try:
        r = subprocess.run([os.environ.get("PORTAL_BIN", "portal"), "serve", "--config", p.config], capture_output=True,
                           text=True, timeout=60, env=dict(p.env, PORTAL_LISTEN=f"127.0.0.1:{p.port + 1}"))
        assert r.returncode != 0
        assert "another portal server is already using the SQLite database" in r.stderr and "PostgreSQL" in r.stderr
        # The CLI still works beside the running server.
        assert p.cli("user", "list").returncode == 0
    finally:
        assert p.stop() == 0


def test_replicas_started_together_on_an_empty_database_are_ready_together():
    """The replica that loses the race to create the first signing key re-reads at once instead of
    answering 503 "no signing key is active" until its next check (30 s by default)."""
    name = "portal_race_" + uuid.uuid4().hex[:10]
    psql(PG, f"CREATE DATABASE {name}")
    url = PG.rsplit("/", 1)[0] + "/" + name
    started, portals, errors = time.time(), [], []
    issuer = "http://127.0.0.1:9"

    def start():
        try:
            portals.append(Portal(database_url=url, issuer=issuer, expect_setup_link=False))
        except Exception as e:       # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        ready_after = time.time() - started
        assert ready_after < 20, f"three replicas took {ready_after:.1f} s to be ready together"
        jwks = [requests.get(p.base + "/keys").json()["keys"] for p in portals]
        assert all(len(k) == 2 for k in jwks) and len({json.dumps(k, sort_keys=True) for k in jwks}) == 1
        assert all(requests.get(p.base + "/readyz").status_code == 200 for p in portals)
        assert psql(url, "SELECT count(*) FROM signing_keys") == "2"
    finally:
        for p in portals:
            p.stop()
        psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
