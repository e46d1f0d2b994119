"""Hardening (issue 13), through real `portal serve` processes: reserved Kubernetes identities,
control characters in identifiers, weak secrets, throttled client authentication, log hygiene,
one refresh error message, resealing, CSRF rotation, /metrics access, and the admin guard.
Each test reproduces what an outside review did against the running portal."""
import base64
import json
import os
import re
import secrets
import sqlite3
import subprocess
import time
import urllib.parse

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import CALLBACK, PORTAL_BIN, RP_SECRET, Portal

PASSWORD = "hardening-password-1"
WEBHOOK_TOKEN = secrets.token_hex(24)
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CRED_TYPE = "urn:portal:params:oauth:token-type:application-credential"


class SourceAddress(HTTPAdapter):
    """Connects from another loopback address (127.0.0.0/8 is all ours): a second client machine."""

    def __init__(self, ip):
        self.ip = ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.ip, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(ip="127.0.0.1"):
    s = requests.Session()
    s.mount("http://", SourceAddress(ip))
    return s


def csrf_of(text):
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, "no CSRF field"
    return m.group(1)


def try_login(s, p, user, password, headers=None):
    page = s.get(p.base + "/login", headers=headers)
    return s.post(p.base + "/login", data={"csrf": csrf_of(page.text), "username": user, "password": password},
                  headers=headers, allow_redirects=False)


def login(p, user, password=PASSWORD, s=None):
    s = s or requests.Session()
    r = try_login(s, p, user, password)
    assert r.status_code == 303, r.text
    return s


def claims(jwt):
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def review(p, token):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    r = requests.post(p.base + "/webhook/tokenreview", json=body, headers={"Authorization": "Bearer " + WEBHOOK_TOKEN})
    assert r.status_code == 200, r.text
    return r.json()["status"]


def exchange(p, token):
    return requests.post(p.base + "/token", data={"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": CRED_TYPE,
                                                  "client_id": "kubernetes"})


def add_user(p, name, *args):
    r = p.cli("user", "add", name, "--password-stdin", *args, stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr


def credential(p, *owner):
    r = p.cli("credential", "create", *owner, "--name", "probe", "--expires", "1d")
    assert r.returncode == 0, r.stderr
    return re.search(r"kpc_\S+", r.stdout).group(0)


def audit(p, kind):
    r = p.cli("audit", "--type", kind, "--limit", "50")
    assert r.returncode == 0, r.stderr
    return r.stdout


def code_flow(p, user, client_id="rp-public", scope="openid profile groups email", password=PASSWORD):
    """The authorization-code flow with PKCE, as a browser and a relying party do it; returns the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(__import__("hashlib").sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    s = requests.Session()
    q = urllib.parse.urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": scope,
                                "state": "st", "code_challenge": challenge, "code_challenge_method": "S256"})
    r = s.get(p.base + "/authorize?" + q, allow_redirects=False)
    assert r.status_code == 302, r.text
    login_url = urllib.parse.urljoin(p.base, r.headers["Location"])
    req = urllib.parse.parse_qs(urllib.parse.urlparse(login_url).query)["req"][0]
    page = s.get(login_url)
    r = s.post(p.base + "/login", data={"csrf": csrf_of(page.text), "req": req, "username": user, "password": password},
               allow_redirects=False)
    assert r.status_code == 303, r.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    return requests.post(p.base + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                  "client_id": client_id, "code_verifier": verifier})


@pytest.fixture
def token_file(tmp_path):
    f = tmp_path / "webhook-token"
    f.write_text(WEBHOOK_TOKEN + "\n")
    return f


# ---------------------------------------------------------------------------------------------
# 1. Kubernetes identity mapping


def test_system_groups_never_reach_kubernetes_with_an_empty_groups_prefix(token_file):
    extra = f"""
webhook:
  bearer_token_file: {token_file}
kubernetes:
  apiserver:
    groups_prefix: ""
"""
    p = Portal(extra_yaml=extra)
    try:
        add_user(p, "mallory", "--group", "system:masters", "--group", "System:Nodes", "--group", "dev")
        token = credential(p, "--user", "mallory")
        # TokenReview (webhook path).
        status = review(p, token)
        assert status["authenticated"] is True
        assert status["user"]["groups"] == ["dev"], status
        # Token exchange (OIDC path for robots and scripts).
        r = exchange(p, token)
        assert r.status_code == 200, r.text
        assert claims(r.json()["id_token"])["groups"] == ["dev"]
        # The code flow (the id_token kubectl and every relying party gets) and /userinfo.
        r = code_flow(p, "mallory")
        assert r.status_code == 200, r.text
        assert claims(r.json()["id_token"])["groups"] == ["dev"]
        info = requests.get(p.base + "/userinfo", headers={"Authorization": "Bearer " + r.json()["access_token"]}).json()
        assert info["groups"] == ["dev"]
        # Every drop is audited, with the group named.
        events = audit(p, "identity.group_dropped")
        assert "system:masters" in events and "mallory" in events
        # check-config says loudly that an empty prefix is a risk.
        r = p.cli("check-config")
        assert r.returncode == 0 and "WARNING" in r.stdout and "groups_prefix is empty" in r.stdout, r.stdout
    finally:
        p.stop()


def test_email_usernames_need_a_verified_email_on_every_path(token_file):
    extra = f"""
webhook:
  bearer_token_file: {token_file}
kubernetes:
  apiserver:
    username_claim: email
  clusters:
    - name: prod
      server: https://127.0.0.1:6443
"""
    p = Portal(extra_yaml=extra)
    try:
        add_user(p, "noemail")
        add_user(p, "withmail", "--email", "withmail@example.org")
        bare, good = credential(p, "--user", "noemail"), credential(p, "--user", "withmail")
        # Webhook: refused, not the bare prefix "oidc:" that every email-less person would share.
        status = review(p, bare)
        assert status["authenticated"] is False and "email" in status["error"], status
        assert review(p, good)["user"]["username"] == "oidc:withmail@example.org"
        # Token exchange for the kubernetes client: refused with the reason.
        r = exchange(p, bare)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant" and "email" in r.json()["error_description"], r.text
        assert exchange(p, good).status_code == 200
        # The kubectl page says why instead of handing out a line that cannot work.
        s = login(p, "noemail")
        page = s.get(p.base + "/kubernetes")
        assert page.status_code == 403 and "no email address" in page.text, page.text
        assert "refresh-token" not in page.text
        assert s.post(p.base + "/kubernetes/kubeconfig", data={"csrf": csrf_of(login(p, "withmail").get(p.base + "/kubernetes").text)}).status_code == 403
        w = login(p, "withmail")
        ok = w.get(p.base + "/kubernetes")
        assert ok.status_code == 200
        shown = w.post(p.base + "/kubernetes/command", data={"csrf": csrf_of(ok.text), "cluster": "prod"})
        assert shown.status_code == 200 and "refresh-token" in shown.text, shown.text
        # Nothing was minted for the refused person.
        assert "noemail" not in audit(p, "token.issue")
    finally:
        p.stop()


def test_robots_have_one_kubernetes_name_on_both_paths(token_file):
    p = Portal(extra_yaml=f"webhook:\n  bearer_token_file: {token_file}\n")
    try:
        r = p.cli("robot", "add", "ci-deployer", "--team", "platform", "--group", "deployers")
        assert r.returncode == 0, r.stderr
        token = credential(p, "--robot", "ci-deployer")
        via_webhook = review(p, token)["user"]["username"]
        id_token = claims(exchange(p, token).json()["id_token"])
        # kube-apiserver with the rendered flags: --oidc-username-prefix=oidc: + preferred_username.
        via_oidc = "oidc:" + id_token["preferred_username"]
        assert via_webhook == via_oidc == "oidc:robot:ci-deployer"
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------------
# 2. Control characters in identifiers, on SQLite and PostgreSQL

CONTROL = ["%00", "%01", "%1F", "%7F", "%0A", "%0D%0A", "%09", "%C2%85"]


def backends():
    out = ["sqlite"]
    if os.environ.get("PORTAL_TEST_POSTGRES_URL"):
        out.append("postgres")
    return out


def fresh_postgres_database():
    """A new empty database on the test cluster, so this portal starts from nothing."""
    url = os.environ["PORTAL_TEST_POSTGRES_URL"]
    name = "hardening_" + secrets.token_hex(4)
    subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return url.rsplit("/", 1)[0] + "/" + name


def storage_errors(p):
    text = requests.get(p.base + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("portal_storage_errors_total"))


@pytest.mark.parametrize("backend", backends())
def test_control_characters_in_identifiers_are_refused_at_the_edge(backend):
    p = Portal(database_url=fresh_postgres_database() if backend == "postgres" else None)
    try:
        r = p.cli("client", "add", "my-app", "--secret-stdin", "--redirect-uri", CALLBACK, stdin="s" * 40 + "\n")
        assert r.returncode == 0, r.stderr
        before = storage_errors(p)
        for c in CONTROL:
            # /authorize: a friendly 400 page, never a code for "my-app".
            r = requests.get(f"{p.base}/authorize?response_type=code&client_id=my-app{c}evil&redirect_uri={urllib.parse.quote(CALLBACK)}"
                             "&scope=openid&state=x", allow_redirects=False)
            assert r.status_code == 400, (c, r.status_code, r.headers.get("Location"))
            assert "text/html" in r.headers["Content-Type"] and "code=" not in r.headers.get("Location", "")
            # /token: OAuth error JSON, not an authentication as my-app.
            r = requests.post(p.base + "/token", data=f"grant_type=refresh_token&refresh_token=x&client_id=my-app{c}evil&client_secret={'s' * 40}",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", (c, r.text)
            basic = base64.b64encode(f"my-app{urllib.parse.unquote(c)}evil:{'s' * 40}".encode()).decode()
            r = requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
                              headers={"Authorization": "Basic " + basic})
            assert r.status_code == 401 and r.json()["error"] == "invalid_client", (c, r.text)
            # /login?req=…: the friendly "malformed link" page.
            r = requests.get(f"{p.base}/login?req=abc{c}junk")
            assert r.status_code == 400 and "text/html" in r.headers["Content-Type"], (c, r.status_code)
            # A username with a control character: refused like a wrong password, nothing looked up.
            s = requests.Session()
            page = s.get(p.base + "/login")
            r = s.post(p.base + "/login", data=f"csrf={csrf_of(page.text)}&username=root{c}x&password=whatever1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False)
            assert r.status_code in (400, 401), (c, r.status_code)
        # None of it reached the database as a fault anyone could trigger.
        assert storage_errors(p) == before
        assert "portal exited" not in p.logs()
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------------
# 4. Secrets shorter than the documentation allows


def start_fails(p_config, env):
    r = subprocess.run([PORTAL_BIN, "serve", "--config", p_config], capture_output=True, text=True, env=env, timeout=60)
    return r


def test_a_short_key_encryption_key_is_refused_on_every_path(tmp_path):
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"issuer: http://127.0.0.1:1\nlisten: 127.0.0.1:1\ndata_dir: {tmp_path / 'data'}\n")
    env = dict(os.environ, PORTAL_KEY_ENCRYPTION_KEY="a")
    r = start_fails(str(cfg), env)
    assert r.returncode != 0 and "PORTAL_KEY_ENCRYPTION_KEY" in r.stderr and "at least 32 characters" in r.stderr, r.stderr
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", str(cfg)], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "PORTAL_KEY_ENCRYPTION_KEY" in r.stdout
    r = subprocess.run([PORTAL_BIN, "user", "list", "--config", str(cfg)], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    # The file form too.
    (tmp_path / "kek").write_text("short\n")
    cfg.write_text(cfg.read_text() + f"signing:\n  encryption_key_file: {tmp_path / 'kek'}\n")
    env = dict(os.environ)
    env.pop("PORTAL_KEY_ENCRYPTION_KEY", None)
    r = start_fails(str(cfg), env)
    assert r.returncode != 0 and "at least 32 characters" in r.stderr


def test_a_short_client_secret_is_refused_on_every_path(tmp_path):
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"""issuer: http://127.0.0.1:1
listen: 127.0.0.1:1
data_dir: {tmp_path / 'data'}
clients:
  - id: weak
    secret_env: WEAK_SECRET
    redirect_uris: ["{CALLBACK}"]
""")
    env = dict(os.environ, WEAK_SECRET="abc")
    r = start_fails(str(cfg), env)
    assert r.returncode != 0 and "at least 32 characters" in r.stderr, r.stderr
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", str(cfg)], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "clients[weak]" in r.stdout and "32" in r.stdout
    r = subprocess.run([PORTAL_BIN, "client", "add", "weak2", "--secret-stdin", "--redirect-uri", CALLBACK, "--config", str(cfg)],
                       input="abc\n", capture_output=True, text=True, env=dict(env, WEAK_SECRET="w" * 40))
    assert r.returncode != 0 and "at least 32 characters" in r.stderr


def test_wrong_client_secrets_are_throttled_per_client_and_address():
    p = Portal()
    try:
        attacker, owner = session_from("127.0.0.2"), session_from("127.0.0.3")
        statuses = []
        for _ in range(12):
            r = attacker.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x"}, auth=("rp-confidential", "wrong-" * 6))
            statuses.append(r.status_code)
            assert r.json()["error"] == "invalid_client"
        assert statuses[:4] == [401] * 4 and statuses[-1] == 429, statuses
        # The right secret from the attacker's address is delayed too (nothing is verified while delayed) …
        r = attacker.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x" * 43}, auth=("rp-confidential", RP_SECRET))
        assert r.status_code == 429 and "try again in" in r.json()["error_description"]
        # … but the client at its own address is not locked out by someone else's guesses.
        r = owner.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x" * 43}, auth=("rp-confidential", RP_SECRET))
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        assert "client.auth_failure" in audit(p, "client.auth_failure")
        # The operator sees it, and clears it.
        listed = p.cli("throttle", "list").stdout
        assert "pair:client:rp-confidential|127.0.0.2" in listed
        assert p.cli("throttle", "clear", "--address", "127.0.0.2").returncode == 0
        r = attacker.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x" * 43}, auth=("rp-confidential", RP_SECRET))
        assert r.status_code == 400, r.text
    finally:
        p.stop()


def test_secrets_stored_before_a_key_encryption_key_are_sealed_once_one_is_configured():
    p = Portal()
    try:
        add_user(p, "alice")
        first = code_flow(p, "alice").json()
        p.stop()
        db = os.path.join(p.dir, "data", "portal.sqlite")
        with sqlite3.connect(db) as c:
            stored = dict(c.execute("SELECT name, value FROM named_secrets").fetchall())
        assert stored["browser-mac-v1"].startswith("plain:") and stored["refresh-successor-v1"].startswith("plain:")

        p.env["PORTAL_KEY_ENCRYPTION_KEY"] = "k" * 16 + secrets.token_hex(16)
        p.start()
        with sqlite3.connect(db) as c:
            stored = dict(c.execute("SELECT name, value FROM named_secrets").fetchall())
            keys = [r[0] for r in c.execute("SELECT sealed_private_key FROM signing_keys")]
        for name in ("browser-mac-v1", "refresh-successor-v1"):
            assert stored[name].startswith("aesgcm:v2:"), stored[name][:20]
        assert keys and all(k.startswith("aesgcm:v2:") for k in keys)
        # The same secrets, sealed: a refresh token minted before still refreshes.
        r = requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "rp-public"})
        assert r.status_code == 200, r.text
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------------
# 6. Smaller findings


def test_another_clients_refresh_token_gets_the_same_answer_as_an_unknown_one():
    p = Portal()
    try:
        add_user(p, "alice")
        live = code_flow(p, "alice").json()["refresh_token"]
        theirs = requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": live}, auth=("rp-confidential", RP_SECRET))
        unknown = requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": secrets.token_urlsafe(32)},
                                auth=("rp-confidential", RP_SECRET))
        assert theirs.status_code == unknown.status_code == 400
        assert theirs.json() == unknown.json(), (theirs.text, unknown.text)
        # And the probe consumed nothing: the owner still refreshes.
        assert requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": live, "client_id": "rp-public"}).status_code == 200
    finally:
        p.stop()


def test_the_ldap_bind_password_never_reaches_the_log_even_at_debug(tmp_path):
    secret = "Sup3r-" + secrets.token_hex(12)
    (tmp_path / "bind").write_text(secret + "\n")
    extra = f"""
ldap:
  urls: ["ldap://127.0.0.1:9"]
  bind_dn: cn=portal,dc=example,dc=org
  bind_password_file: {tmp_path / 'bind'}
  user_search:
    base_dn: ou=people,dc=example,dc=org
  groups:
    mode: search
    base_dn: ou=groups,dc=example,dc=org
"""
    p = Portal(extra_yaml=extra, env={"PORTAL_LOG_LEVEL": "debug"})
    try:
        try_login(requests.Session(), p, "someone", "password-1")   # exercises the directory path (it is down)
        requests.get(p.base + "/readyz")
    finally:
        p.stop()
    logs = p.logs()
    assert '"level":"debug"' in logs and "Starting service" in logs, "the log level did not apply"
    assert secret not in logs


def test_the_csrf_token_is_replaced_at_sign_in():
    p = Portal()
    try:
        add_user(p, "alice")
        s = requests.Session()
        before = csrf_of(s.get(p.base + "/login").text)
        r = s.post(p.base + "/login", data={"csrf": before, "username": "alice", "password": PASSWORD}, allow_redirects=False)
        assert r.status_code == 303
        after = csrf_of(s.get(p.base + "/credentials").text)
        assert after != before
        # A token seen before sign-in (say, planted by an attacker who fixed the browser cookie) is dead.
        r = s.post(p.base + "/credentials", data={"csrf": before, "name": "x", "expires": "86400"})
        assert r.status_code == 403
        r = s.post(p.base + "/credentials", data={"csrf": after, "name": "x", "expires": "86400"})
        assert r.status_code == 200
    finally:
        p.stop()


def outbound_ip():
    """This machine's address on a non-loopback interface, or None."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        try:
            u.connect(("192.0.2.1", 9))      # no packet is sent; the kernel picks the route's source address
            ip = u.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_metrics_need_a_token_or_a_loopback_peer(tmp_path):
    ip = outbound_ip()
    p = Portal(listen_host="0.0.0.0")
    try:
        assert requests.get(p.base + "/metrics").status_code == 200          # loopback: the operator on the host
        if ip:
            r = requests.get(f"http://{ip}:{p.port}/metrics")                # any other peer
            assert r.status_code == 403 and "metrics.bearer_token_file" in r.json()["error_description"], r.text
            assert requests.get(f"http://{ip}:{p.port}/healthz").status_code == 200
    finally:
        p.stop()
    token = "m" * 8 + secrets.token_hex(16)
    (tmp_path / "metrics").write_text(token + "\n")
    p = Portal(extra_yaml=f"metrics:\n  bearer_token_file: {tmp_path / 'metrics'}\n")
    try:
        r = requests.get(p.base + "/metrics")
        assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        assert requests.get(p.base + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = requests.get(p.base + "/metrics", headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200 and "portal_" in r.text
    finally:
        p.stop()
    if not ip:
        pytest.skip("no non-loopback interface here: the loopback-only default was checked from loopback only")


def test_an_admin_cannot_delete_or_disable_themself_by_another_spelling(portal):
    s = requests.Session()
    page = s.get(portal.setup_url)
    form = {"csrf": csrf_of(page.text), "token": urllib.parse.parse_qs(urllib.parse.urlparse(portal.setup_url).query)["token"][0],
            "username": "root-admin", "password": "admin-password-1", "confirm": "admin-password-1"}
    assert s.post(portal.base + "/setup", data=form, allow_redirects=False).status_code == 303
    csrf = csrf_of(s.get(portal.base + "/admin/users").text)
    for spelling in ["ROOT-ADMIN", " root-admin ", "Root-Admin"]:
        for action in ("delete", "disable"):
            for confirm in ({}, {"confirm": "yes"}):
                r = s.post(portal.base + f"/admin/users/{action}", data={"csrf": csrf, "username": spelling, **confirm})
                assert r.history[0].status_code == 303 and "You cannot" in r.text, (spelling, action, r.status_code)
    # Still there, still enabled: the session survived and a new sign-in works.
    assert "root-admin" in portal.cli("user", "list").stdout
    assert "Sign in" not in s.get(portal.base + "/admin/users").text
    assert try_login(requests.Session(), portal, "root-admin", "admin-password-1").status_code == 303
