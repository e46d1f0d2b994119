"""Shared by the session tests of issue 15 (test_sessions_revocation.py, test_sessions_logout.py,
test_sessions_devices.py) and by the back-channel logout, device grant and session page tests:
people and browsers (`requests` sessions), the code flow, refresh, revocation, introspection,
RP-initiated logout, the kubectl page, "Your devices", the audit log, and the portals the session
tests start (`main_portal`, `short_portal`: context managers their module fixtures wrap)."""
import base64
import contextlib
import hashlib
import json
import re
import secrets
import shutil
import urllib.parse

import requests

from apiserver_standin import Authenticator, StandIn
from conftest import CALLBACK, RP_SECRET, Portal
from test_hardening import csrf_of

PASSWORD = "sessions-password-1"
RS_SECRET = "rs-secret-9876543210-zyxwvutsrqponmlkjihgfedcba"
LOGGED_OUT = "http://127.0.0.1:9/logged-out"
CLUSTER = "test-cluster"
LIFETIME = 15  # id_token/access token lifetime of the main portal (kubectl refreshes within 10 s of expiry)
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

# Appended inside conftest's `clients:` list, then top-level sections.
EXTRA_CLIENTS = f"""  - id: rp-logout
    name: Logout test app
    public: true
    redirect_uris: ["{CALLBACK}"]
    post_logout_redirect_uris: ["{LOGGED_OUT}"]
  - id: rs-all
    name: Resource server
    secret_env: RS_SECRET
    redirect_uris: ["{CALLBACK}"]
    introspect_all_clients: true
"""


# ---------------------------------------------------------------------------------------------
# Helpers


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def add_user(p, name, password=PASSWORD, admin=False):
    args = ["user", "add", name, "--password-stdin"] + (["--admin"] if admin else [])
    r = p.cli(*args, stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    return name


def try_login(p, user, password=PASSWORD, s=None):
    s = s or requests.Session()
    page = s.get(p.base + "/login")
    r = s.post(p.base + "/login", data={"csrf": csrf_of(page.text), "username": user, "password": password},
               allow_redirects=False)
    return s, r


def login(p, user, password=PASSWORD, s=None):
    s, r = try_login(p, user, password, s)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return s


def signed_in(p, s):
    """True when the browser's portal session works, False when the portal sends it to /login."""
    r = s.get(p.base + "/", allow_redirects=False)
    if r.status_code == 200:
        return True
    assert r.status_code in (302, 303) and r.headers["Location"].startswith("/login"), (r.status_code, r.headers)
    return False


def code_flow(p, s, client="rp-public", secret=None, scope="openid profile"):
    """Authorization code + PKCE for `client` in a signed-in browser `s`; returns the token response."""
    verifier = secrets.token_urlsafe(48)
    q = {"client_id": client, "redirect_uri": CALLBACK, "response_type": "code", "scope": scope,
         "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
         "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
    r = s.get(p.base + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(CALLBACK), (r.status_code, r.headers, r.text[:300])
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_id": client}
    if secret:
        form["client_secret"] = secret
    r = requests.post(p.base + "/token", data=form)
    assert r.status_code == 200, r.text
    return r.json()


def refresh(p, token, client="rp-public", secret=None):
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client}
    if secret:
        form["client_secret"] = secret
    return requests.post(p.base + "/token", data=form, timeout=10)


def assert_dead(r):
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (r.status_code, r.text)


def userinfo(p, access_token):
    return requests.get(p.base + "/userinfo", headers={"Authorization": "Bearer " + access_token})


def revoke(p, token, auth=None, data=None, **extra):
    form = {"token": token, **extra} if token is not None else dict(extra)
    form.update(data or {})
    return requests.post(p.base + "/revoke", data=form, auth=auth)


def introspect(p, token, auth=("rp-confidential", RP_SECRET), **extra):
    form = {"token": token, **extra} if token is not None else dict(extra)
    return requests.post(p.base + "/introspect", data=form, auth=auth)


def kubectl_command(p, s):
    """POST /kubernetes/command and read the shown-once line: returns (id_token, refresh_token)."""
    page = s.get(p.base + "/kubernetes")
    assert page.status_code == 200
    r = s.post(p.base + "/kubernetes/command", data={"csrf": csrf_of(page.text), "cluster": CLUSTER}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), r.status_code
    shown = s.get(p.base + r.headers["Location"])
    assert shown.status_code == 200
    rt = re.search(r"refresh-token=([A-Za-z0-9_\-]+)", shown.text)
    it = re.search(r"id-token=([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", shown.text)
    assert rt and it, "no tokens in the kubectl line"
    return it.group(1), rt.group(1)


def table_rows(section):
    return [row for row in re.findall(r"<tr>(.*?)</tr>", section, re.S) if "<td" in row]


def devices(p, s):
    """The /devices page split into (browser rows, family rows, whole html); each row is
    {"id": hidden id or None, "current": bool, "html": row}."""
    r = s.get(p.base + "/devices", allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.headers)
    page = r.text
    assert 'id="browsers-title"' in page and 'id="sessions-title"' in page
    browsers = page.split('id="browsers-title"', 1)[1].split('id="sessions-title"', 1)[0]
    families = page.split('id="sessions-title"', 1)[1]

    def parse(rows):
        out = []
        for row in rows:
            m = re.search(r'name="id" value="([^"]+)"', row)
            out.append({"id": m.group(1) if m else None, "current": "This browser" in row, "html": row})
        return out

    return parse(table_rows(browsers)), parse(table_rows(families)), page


def flash_text(page):
    """The notice or error the page carries after a redirect (everything inside <main>)."""
    m = re.search(r"<main.*?</main>", page, re.S)
    return m.group(0) if m else page


def audit(p, type_):
    r = p.cli("audit", "--type", type_, "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def kubernetes_yaml(standin_port, ca_file):
    return f"""kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:{standin_port}
      certificate_authority_file: {ca_file}
      namespace: team-a
"""


def end_session(p, s, method="GET", **params):
    """RP-initiated logout: GET or POST /end-session with `params`."""
    if method == "GET":
        return s.get(p.base + "/end-session", params=params, allow_redirects=False)
    return s.post(p.base + "/end-session", data=params, allow_redirects=False)


# ---------------------------------------------------------------------------------------------
# Portals (the session tests' module fixtures wrap these)


@contextlib.contextmanager
def main_portal(pki):
    """The portal most session tests share (id_token and access token lifetime LIFETIME, a Kubernetes
    cluster served by the TLS stand-in API server, certificates from test_kubectl's `pki`):
    yields (portal, standin)."""
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    extra = EXTRA_CLIENTS + f"tokens:\n  id_token_lifetime: {LIFETIME}s\n  access_token_lifetime: {LIFETIME}s\n" \
        + kubernetes_yaml(standin.port, pki / "ca.crt")
    p = Portal(extra_yaml=extra, env={"RS_SECRET": RS_SECRET})
    standin.auth = Authenticator(p.issuer, "kubernetes")
    yield p, standin
    standin.stop()
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly"


@contextlib.contextmanager
def short_portal():
    """Short-lived browser sessions and id_tokens."""
    p = Portal(extra_yaml=EXTRA_CLIENTS + "tokens:\n  session_idle_timeout: 10s\n  id_token_lifetime: 5s\n",
               env={"RS_SECRET": RS_SECRET})
    yield p
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0
