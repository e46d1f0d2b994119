"""Issue 15, sessions that can end, through a real `portal serve` driven with `requests` (and the real
kubectl for one test): discovery, `sid`, RFC 7009 revocation, RFC 7662 introspection, RP-initiated
logout, the sign-out choice, the browser idle timeout, "Your devices", the password change, the admin
and CLI ways to end sessions, two PostgreSQL replicas (when PORTAL_TEST_POSTGRES_URL is set).

Every test uses people of its own, so the module-scoped portals can be shared."""
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import time
import urllib.parse

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from apiserver_standin import Authenticator, StandIn
from conftest import CALLBACK, RP_SECRET, Portal
from test_hardening import csrf_of, session_from
from test_kubectl import Kubectl, pki, refresh_with, wait_for_refresh_window  # noqa: F401 (pki is a fixture)

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


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def env(pki):  # noqa: F811
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


@pytest.fixture(scope="module")
def portal(env):
    return env[0]


@pytest.fixture(scope="module")
def short():
    """Short-lived browser sessions and id_tokens."""
    p = Portal(extra_yaml=EXTRA_CLIENTS + "tokens:\n  session_idle_timeout: 10s\n  id_token_lifetime: 5s\n",
               env={"RS_SECRET": RS_SECRET})
    yield p
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0


# ---------------------------------------------------------------------------------------------
# 1. Discovery and sid


def test_discovery_lists_the_session_endpoints_and_id_tokens_carry_a_stable_sid(portal):
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = requests.get(portal.base + path).json()
        assert meta["end_session_endpoint"] == portal.issuer + "/end-session", path
        assert meta["revocation_endpoint"] == portal.issuer + "/revoke"
        assert meta["introspection_endpoint"] == portal.issuer + "/introspect"
        assert sorted(meta["revocation_endpoint_auth_methods_supported"]) == ["client_secret_basic", "client_secret_post", "none"]
        assert sorted(meta["introspection_endpoint_auth_methods_supported"]) == ["client_secret_basic", "client_secret_post"]
        assert meta["backchannel_logout_supported"] is True and meta["backchannel_logout_session_supported"] is True
        assert meta["grant_types_supported"] == ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", EXCHANGE]
        assert "sid" in meta["claims_supported"]

    add_user(portal, "disco")
    s = login(portal, "disco")
    t = code_flow(portal, s)
    sid = claims_of(t["id_token"])["sid"]
    assert isinstance(sid, str) and len(sid) >= 16
    r = refresh(portal, t["refresh_token"])
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["id_token"])["sid"] == sid
    # Another client signed in through the same browser session shares the sid; a new browser session does not.
    t2 = code_flow(portal, s, client="rp-confidential", secret=RP_SECRET)
    assert claims_of(t2["id_token"])["sid"] == sid
    other = code_flow(portal, login(portal, "disco"))
    assert claims_of(other["id_token"])["sid"] != sid


# ---------------------------------------------------------------------------------------------
# 2. RFC 7009


def test_revoke_refresh_token_of_a_confidential_client_kills_the_family(portal):
    add_user(portal, "rev-a")
    s = login(portal, "rev-a")
    t = code_flow(portal, s, client="rp-confidential", secret=RP_SECRET)
    r = refresh(portal, t["refresh_token"], client="rp-confidential", secret=RP_SECRET)
    assert r.status_code == 200, r.text
    successor = r.json()
    assert userinfo(portal, successor["access_token"]).status_code == 200
    # Revoking the successor (Basic auth) at once: inside the grace window, where the first token would
    # still give the successor back.
    r = revoke(portal, successor["refresh_token"], auth=("rp-confidential", RP_SECRET), token_type_hint="refresh_token")
    assert r.status_code == 200, r.text
    assert r.text == ""
    assert r.headers["Cache-Control"] == "no-store"
    assert_dead(refresh(portal, successor["refresh_token"], client="rp-confidential", secret=RP_SECRET))
    assert_dead(refresh(portal, t["refresh_token"], client="rp-confidential", secret=RP_SECRET))
    for access in (t["access_token"], successor["access_token"]):
        u = userinfo(portal, access)
        assert u.status_code == 401 and 'error="invalid_token"' in u.headers["WWW-Authenticate"]
    # Revoking again: still 200.
    assert revoke(portal, successor["refresh_token"], auth=("rp-confidential", RP_SECRET)).status_code == 200
    events = [e for e in audit(portal, "token.revoke") if e.get("client_id") == "rp-confidential"]
    assert events and events[0]["details"]["family"]


def test_revoke_access_token_kills_its_family_client_secret_post(portal):
    add_user(portal, "rev-b")
    t = code_flow(portal, login(portal, "rev-b"), client="rp-confidential", secret=RP_SECRET)
    r = revoke(portal, t["access_token"], client_id="rp-confidential", client_secret=RP_SECRET, token_type_hint="access_token")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert userinfo(portal, t["access_token"]).status_code == 401
    assert_dead(refresh(portal, t["refresh_token"], client="rp-confidential", secret=RP_SECRET))


def test_revoke_unknown_garbage_and_foreign_tokens_answers_200_and_revokes_nothing(portal):
    add_user(portal, "rev-c")
    s = login(portal, "rev-c")
    pub = code_flow(portal, s)  # rp-public's
    conf = ("rp-confidential", RP_SECRET)
    for token in ["garbage", "A" * 43, secrets.token_urlsafe(32), "kpa_" + b64url(b'{"sub":"x"}') + "." + b64url(b"\0" * 32), "ä€"]:
        r = revoke(portal, token, auth=conf)
        assert r.status_code == 200, (token, r.status_code, r.text)
        assert r.headers["Cache-Control"] == "no-store"
    # Another client's refresh token and access token: 200, and they still work.
    r = revoke(portal, pub["refresh_token"], auth=conf, token_type_hint="refresh_token")
    assert r.status_code == 200
    r = revoke(portal, pub["access_token"], auth=conf)
    assert r.status_code == 200
    assert userinfo(portal, pub["access_token"]).status_code == 200
    r = refresh(portal, pub["refresh_token"])
    assert r.status_code == 200, r.text
    # Nothing of this person's was audited as a revocation.
    sub = claims_of(pub["id_token"])["sub"]
    assert not [e for e in audit(portal, "token.revoke") if e.get("subject") == sub]


def test_revoke_refuses_bad_client_authentication_and_malformed_requests(portal):
    add_user(portal, "rev-d")
    t = code_flow(portal, login(portal, "rev-d"), client="rp-confidential", secret=RP_SECRET)
    r = revoke(portal, t["refresh_token"], auth=("rp-confidential", "wrong-secret-wrong-secret-wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    # A confidential client by client_id alone, and no client at all: 401.
    r = revoke(portal, t["refresh_token"], client_id="rp-confidential")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = revoke(portal, t["refresh_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = revoke(portal, t["refresh_token"], client_id="no-such-client")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # None of that revoked anything.
    r = refresh(portal, t["refresh_token"], client="rp-confidential", secret=RP_SECRET)
    assert r.status_code == 200, r.text
    latest = r.json()["refresh_token"]
    r = revoke(portal, None, auth=("rp-confidential", RP_SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert r.headers["Cache-Control"] == "no-store"
    r = requests.post(portal.base + "/revoke", data=f"token={latest}&token=x", auth=("rp-confidential", RP_SECRET),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(portal.base + "/revoke", json={"token": latest}, auth=("rp-confidential", RP_SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.get(portal.base + "/revoke", params={"token": latest}, auth=("rp-confidential", RP_SECRET))
    assert r.status_code == 405
    assert refresh(portal, latest, client="rp-confidential", secret=RP_SECRET).status_code == 200


def test_public_client_revokes_its_own_token_with_client_id_alone(portal):
    add_user(portal, "rev-e")
    t = code_flow(portal, login(portal, "rev-e"))
    r = revoke(portal, t["refresh_token"], client_id="rp-public")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert_dead(refresh(portal, t["refresh_token"]))
    assert userinfo(portal, t["access_token"]).status_code == 401


# ---------------------------------------------------------------------------------------------
# 3. RFC 7662


def test_introspection_of_own_refresh_and_access_tokens(portal):
    add_user(portal, "intro-a")
    t = code_flow(portal, login(portal, "intro-a"), client="rp-confidential", secret=RP_SECRET, scope="openid profile")
    sid = claims_of(t["id_token"])["sid"]
    sub = claims_of(t["id_token"])["sub"]
    now = time.time()
    r = introspect(portal, t["refresh_token"], token_type_hint="refresh_token")
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    assert j["active"] is True and j["token_type"] == "refresh_token"
    assert j["client_id"] == "rp-confidential" and j["sub"] == sub and j["username"] == "intro-a"
    assert set(j["scope"].split()) == {"openid", "profile"}
    assert j["iss"] == portal.issuer and j["sid"] == sid
    assert j["iat"] <= now + 2 and j["exp"] > now
    # client_secret_post works too; an access token is "Bearer" with the access token's own exp.
    r = requests.post(portal.base + "/introspect", data={"token": t["access_token"], "client_id": "rp-confidential",
                                                          "client_secret": RP_SECRET})
    j = r.json()
    assert r.status_code == 200 and j["active"] is True and j["token_type"] == "Bearer"
    assert j["client_id"] == "rp-confidential" and j["sub"] == sub and j["sid"] == sid
    assert now - 2 <= j["exp"] <= now + LIFETIME + 2
    # Revoked: exactly {"active": false}, for both tokens.
    assert revoke(portal, t["refresh_token"], auth=("rp-confidential", RP_SECRET)).status_code == 200
    for token in (t["refresh_token"], t["access_token"]):
        r = introspect(portal, token)
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
        assert r.headers["Cache-Control"] == "no-store"


def test_introspection_refuses_public_clients_and_hides_other_clients_tokens(portal):
    add_user(portal, "intro-b")
    pub = code_flow(portal, login(portal, "intro-b"))
    for token in ["garbage", "", secrets.token_urlsafe(32), "kpa_" + b64url(b'{"sub":"x"}') + "." + b64url(b"\0" * 32)]:
        r = introspect(portal, token)
        if token == "":
            assert r.status_code in (200, 400)
            if r.status_code == 200:
                assert r.json() == {"active": False}
            continue
        assert r.status_code == 200 and r.json() == {"active": False}, (token, r.text)
    # A public client may not introspect, even its own token.
    r = requests.post(portal.base + "/introspect", data={"token": pub["refresh_token"], "client_id": "rp-public"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = introspect(portal, pub["refresh_token"], auth=("rp-confidential", "wrong-secret-wrong-secret-wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = introspect(portal, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert requests.get(portal.base + "/introspect").status_code == 405
    # Another client's tokens: inactive for rp-confidential, active for the resource server allowed to see all.
    for token in (pub["refresh_token"], pub["access_token"]):
        r = introspect(portal, token)
        assert r.status_code == 200 and r.json() == {"active": False}
        r = introspect(portal, token, auth=("rs-all", RS_SECRET))
        j = r.json()
        assert r.status_code == 200 and j["active"] is True and j["client_id"] == "rp-public" and j["username"] == "intro-b"
    # Introspection consumed nothing: the token still refreshes.
    assert refresh(portal, pub["refresh_token"]).status_code == 200


# ---------------------------------------------------------------------------------------------
# 4. RP-initiated logout


def end_session(p, s, method="GET", **params):
    if method == "GET":
        return s.get(p.base + "/end-session", params=params, allow_redirects=False)
    return s.post(p.base + "/end-session", data=params, allow_redirects=False)


def tamper_signature(token):
    h, b, sig = token.split(".")
    i = len(sig) // 2
    return ".".join([h, b, sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]])


def test_end_session_with_a_valid_hint_redirects_with_state_and_ends_everything_of_that_browser(portal):
    add_user(portal, "lo-a")
    s = login(portal, "lo-a")
    t = code_flow(portal, s, client="rp-logout")
    other_app = code_flow(portal, s, client="rp-public")
    _, kubectl_rt = kubectl_command(portal, s)
    elsewhere = code_flow(portal, login(portal, "lo-a"), client="rp-logout")  # another browser of the same person
    r = end_session(portal, s, id_token_hint=t["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="st 1/ü")
    assert r.status_code == 303, (r.status_code, r.text[:500])
    target = urllib.parse.urlsplit(r.headers["Location"])
    assert urllib.parse.urlunsplit(target._replace(query="")) == LOGGED_OUT
    assert urllib.parse.parse_qs(target.query) == {"state": ["st 1/ü"]}
    assert not signed_in(portal, s)
    assert_dead(refresh(portal, t["refresh_token"], client="rp-logout"))
    assert userinfo(portal, t["access_token"]).status_code == 401
    # The other SSO app signed in through this browser ended too; kubectl (not an SSO app) did not;
    # the same person's other browser is untouched.
    assert_dead(refresh(portal, other_app["refresh_token"]))
    assert refresh_with(portal, kubectl_rt).status_code == 200
    assert refresh(portal, elsewhere["refresh_token"], client="rp-logout").status_code == 200
    events = audit(portal, "logout")
    assert any(e.get("details", {}).get("via") == "end_session" for e in events), events


def test_end_session_by_post_without_redirect_uri_says_signed_out(portal):
    add_user(portal, "lo-b")
    s = login(portal, "lo-b")
    t = code_flow(portal, s, client="rp-logout")
    r = end_session(portal, s, method="POST", id_token_hint=t["id_token"], client_id="rp-logout")
    # No post-logout URI: the portal's own page says so (Post/Redirect/Get: 303 to /login with the notice).
    assert r.status_code == 303 and r.headers["Location"] == "/login", (r.status_code, r.headers.get("Location"))
    page = s.get(portal.base + "/login")
    assert "You have signed out of the portal and" in page.text
    assert not signed_in(portal, s)
    assert_dead(refresh(portal, t["refresh_token"], client="rp-logout"))


def test_end_session_without_a_browser_session_still_ends_the_rp_family(portal):
    add_user(portal, "lo-c")
    t = code_flow(portal, login(portal, "lo-c"), client="rp-logout")
    r = end_session(portal, requests.Session(), id_token_hint=t["id_token"], post_logout_redirect_uri=LOGGED_OUT)
    assert r.status_code == 303 and r.headers["Location"] == LOGGED_OUT
    assert_dead(refresh(portal, t["refresh_token"], client="rp-logout"))


def test_end_session_refuses_a_tampered_hint_and_ends_nothing(portal):
    add_user(portal, "lo-d")
    s = login(portal, "lo-d")
    t = code_flow(portal, s, client="rp-logout")
    h, b, sig = t["id_token"].split(".")
    altered_claims = dict(claims_of(t["id_token"]), sub="someone-else")
    bad_hints = {
        "tampered signature": tamper_signature(t["id_token"]),
        "altered payload": ".".join([h, b64url(json.dumps(altered_claims).encode()), sig]),
        "no signature": f"{h}.{b}.",
        "not a jwt": "not-a-jwt",
        "oversized": t["id_token"] + "A" * 20000,
    }
    for why, hint in bad_hints.items():
        r = end_session(portal, s, id_token_hint=hint, post_logout_redirect_uri=LOGGED_OUT, state="x")
        assert r.status_code == 400, (why, r.status_code, r.text[:300])
        assert "Location" not in r.headers and "text/html" in r.headers["Content-Type"]
    # client_id contradicting the hint's audience.
    r = end_session(portal, s, id_token_hint=t["id_token"], client_id="rp-public", post_logout_redirect_uri=LOGGED_OUT)
    assert r.status_code == 400 and "Location" not in r.headers
    # A parameter twice.
    r = s.get(portal.base + "/end-session?id_token_hint=" + t["id_token"] + "&id_token_hint=" + t["id_token"],
              allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers
    assert signed_in(portal, s)
    assert refresh(portal, t["refresh_token"], client="rp-logout").status_code == 200


def test_end_session_refuses_a_hint_signed_by_another_issuer(portal):
    """A well-formed id_token for this portal's client, signed by someone else's key (its own kid)."""
    add_user(portal, "lo-e")
    s = login(portal, "lo-e")
    t = code_flow(portal, s, client="rp-logout")
    key = RSAKey.generate_key(2048, parameters={"kid": "foreign-key"})
    c = claims_of(t["id_token"])
    for iss in (portal.issuer, "https://evil.example"):
        forged = jose_jwt.encode({"alg": "RS256", "kid": "foreign-key"}, dict(c, iss=iss), key)
        r = end_session(portal, s, id_token_hint=forged, post_logout_redirect_uri=LOGGED_OUT, state="x")
        # Never a redirect and never a sign-out, whatever else.
        assert "Location" not in r.headers
        assert signed_in(portal, s)
        if iss == portal.issuer:
            # This issuer's name but a key it does not publish (a forgery, or a session older than the
            # key): no proof of who asked, so the person is asked and nothing ends.
            assert r.status_code == 200 and re.search(r'<form method="post" action="/logout"', r.text), r.status_code
        else:
            # Another issuer's hint is refused outright.
            assert r.status_code == 400, (iss, r.status_code, re.sub(r"\s+", " ", r.text)[:400])
    assert refresh(portal, t["refresh_token"], client="rp-logout").status_code == 200


def test_end_session_asks_instead_of_redirecting_to_an_unregistered_uri(portal):
    add_user(portal, "lo-f")
    s = login(portal, "lo-f")
    t = code_flow(portal, s, client="rp-logout")
    for uri in ["http://evil.example/logged-out", LOGGED_OUT + "/", LOGGED_OUT + "?x=1", CALLBACK, "javascript:alert(1)"]:
        r = end_session(portal, s, id_token_hint=t["id_token"], post_logout_redirect_uri=uri, state="x")
        assert not r.headers.get("Location", "").startswith(uri), r.headers["Location"]
        assert signed_in(portal, s), f"{uri}: the session ended ({r.status_code} to {r.headers.get('Location')})"
        assert r.status_code == 200, (uri, r.status_code, r.headers.get("Location"))
        assert "Location" not in r.headers
        assert re.search(r'<form method="post" action="/logout"', r.text) and 'name="csrf"' in r.text
        assert "will not send you" in r.text
        assert signed_in(portal, s)
    assert refresh(portal, t["refresh_token"], client="rp-logout").status_code == 200
    # The person confirms on the page.
    r = s.post(portal.base + "/logout", data={"csrf": csrf_of(r.text), "end": "browser"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert not signed_in(portal, s)
    assert_dead(refresh(portal, t["refresh_token"], client="rp-logout"))


def test_end_session_without_hint_or_for_another_person_asks_and_never_redirects(portal):
    add_user(portal, "lo-g")
    add_user(portal, "lo-h")
    s = login(portal, "lo-g")
    mine = code_flow(portal, s, client="rp-logout")
    theirs = code_flow(portal, login(portal, "lo-h"), client="rp-logout")
    cases = [dict(), dict(post_logout_redirect_uri=LOGGED_OUT, state="x"), dict(client_id="rp-logout", post_logout_redirect_uri=LOGGED_OUT),
             dict(id_token_hint=theirs["id_token"], post_logout_redirect_uri=LOGGED_OUT)]
    for params in cases:
        r = end_session(portal, s, **params)
        assert r.status_code == 200, (params, r.status_code)
        assert "Location" not in r.headers
        assert re.search(r'<form method="post" action="/logout"', r.text), params
        assert 'name="csrf"' in r.text
        assert signed_in(portal, s)
    assert refresh(portal, mine["refresh_token"], client="rp-logout").status_code == 200
    # lo-h's hint in lo-g's browser ended nothing of lo-h's either.
    assert refresh(portal, theirs["refresh_token"], client="rp-logout").status_code == 200


def test_end_session_accepts_an_expired_hint(short):
    add_user(short, "lo-x")
    s = login(short, "lo-x")
    t = code_flow(short, s, client="rp-logout")
    exp = claims_of(t["id_token"])["exp"]
    time.sleep(max(0, exp - time.time()) + 1)
    assert claims_of(t["id_token"])["exp"] < time.time()
    r = end_session(short, s, id_token_hint=t["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="late")
    assert r.status_code == 303 and r.headers["Location"] == LOGGED_OUT + "?state=late"
    assert not signed_in(short, s)
    assert_dead(refresh(short, t["refresh_token"], client="rp-logout"))


# ---------------------------------------------------------------------------------------------
# 5. The sign-out choice


def test_sign_out_asks_and_end_all_ends_the_kubectl_sessions_of_this_browser(portal):
    add_user(portal, "choice")
    s = login(portal, "choice")
    _, kept = kubectl_command(portal, s)
    app = code_flow(portal, s)
    home = s.get(portal.base + "/")
    r = s.post(portal.base + "/logout", data={"csrf": csrf_of(home.text)}, allow_redirects=False)
    assert r.status_code == 200, r.status_code
    assert re.search(r'<form method="post" action="/logout"', r.text)
    assert re.search(r'type="radio" name="end" value="browser"', r.text)
    assert re.search(r'type="radio" name="end" value="all"', r.text)
    assert signed_in(portal, s)  # asking ended nothing
    assert refresh(portal, app["refresh_token"]).status_code == 200
    # This browser only: the kubectl session keeps working, the SSO app does not.
    app = refresh(portal, app["refresh_token"]).json()
    r = s.post(portal.base + "/logout", data={"csrf": csrf_of(r.text), "end": "browser"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert "You have signed out" in s.get(portal.base + r.headers["Location"]).text
    assert not signed_in(portal, s)
    r = refresh_with(portal, kept)
    assert r.status_code == 200, r.text
    kept = r.json()["refresh_token"]
    assert_dead(refresh(portal, app["refresh_token"]))
    # A new sign-in, a new kubectl session, and "everything": that kubectl session dies with a message.
    login(portal, "choice", s=s)
    _, ended = kubectl_command(portal, s)
    r = s.post(portal.base + "/logout", data={"csrf": csrf_of(s.get(portal.base + "/").text), "end": "all"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert not signed_in(portal, s)
    r = refresh_with(portal, ended)
    assert_dead(r)
    desc = r.json().get("error_description", "")
    assert "sign in again" in desc and portal.issuer + "/kubernetes" in desc, desc
    # ...and only the ones from that browser session: the first one still works.
    assert refresh_with(portal, kept).status_code == 200
    ends = [e["details"] for e in audit(portal, "logout") if e.get("actor") == "choice"]
    assert {"browser", "all"} <= {d.get("ended") for d in ends}, ends
    assert any(d.get("ended") == "all" and d.get("families") == "1" for d in ends), ends
    # Without CSRF nothing is signed out.
    login(portal, "choice", s=s)
    r = s.post(portal.base + "/logout", data={"end": "all"}, allow_redirects=False)
    assert r.status_code == 403
    assert signed_in(portal, s)


# ---------------------------------------------------------------------------------------------
# 6. Idle timeout


def test_idle_browser_session_ends_and_a_busy_one_survives(short):
    add_user(short, "idler")
    idle = login(short, "idler")
    busy = login(short, "idler")
    assert signed_in(short, idle) and signed_in(short, busy)
    start = time.time()
    while time.time() - start < 12.5:
        time.sleep(3)
        assert signed_in(short, busy), f"the busy session ended after {time.time() - start:.1f} s"
    assert not signed_in(short, idle)
    assert signed_in(short, busy)
    # An idle-ended session does not come back, and is not listed on the busy browser's devices page.
    browsers, _, _ = devices(short, busy)
    assert len(browsers) == 1 and browsers[0]["current"]
    # The idle cookie no longer signs in to applications either: /authorize asks for a login.
    q = {"client_id": "rp-public", "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
         "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    r = idle.get(short.base + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


# ---------------------------------------------------------------------------------------------
# 7. Your devices


def test_devices_lists_browsers_and_ends_one_browser_or_one_family(portal):
    add_user(portal, "dev-a")
    here = login(portal, "dev-a")
    there = login(portal, "dev-a", s=session_from("127.0.0.2"))
    browsers, families, page = devices(portal, here)
    assert len(browsers) == 2, page
    assert [b["current"] for b in browsers].count(True) == 1
    other = [b for b in browsers if not b["current"]][0]
    assert other["id"] and "127.0.0.2" in other["html"]
    assert not families
    # A family, shown and ended.
    t = code_flow(portal, here)
    _, families, _ = devices(portal, here)
    assert len(families) == 1 and families[0]["id"]
    assert "Public test app" in families[0]["html"] and "from this browser" in families[0]["html"]
    assert "signing in to Public test app" in families[0]["html"]
    # Without CSRF nothing happens.
    r = here.post(portal.base + "/devices/revoke", data={"id": families[0]["id"]}, allow_redirects=False)
    assert r.status_code == 403
    assert refresh(portal, t["refresh_token"]).status_code == 200
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": families[0]["id"]}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "Ended" in flash_text(here.get(portal.base + "/devices").text)
    t2 = refresh(portal, t["refresh_token"])
    assert_dead(t2)
    assert not devices(portal, here)[1]
    # The other browser, signed out from here.
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": other["id"]}, allow_redirects=False)
    assert r.status_code == 303
    assert not signed_in(portal, there)
    assert signed_in(portal, here)
    browsers, _, _ = devices(portal, here)
    assert len(browsers) == 1 and browsers[0]["current"]
    # This browser's own id (the sid of its id_tokens) is refused: that is what Sign out is for.
    sid = claims_of(code_flow(portal, here)["id_token"])["sid"]
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": sid}, allow_redirects=True)
    assert signed_in(portal, here)


def test_devices_label_and_other_peoples_ids(portal):
    add_user(portal, "dev-b")
    add_user(portal, "dev-c")
    me = login(portal, "dev-b")
    them = login(portal, "dev-c")
    mine = code_flow(portal, me)
    theirs = code_flow(portal, them)
    _, my_families, page = devices(portal, me)
    _, their_families, _ = devices(portal, them)
    mine_id, theirs_id = my_families[0]["id"], their_families[0]["id"]
    csrf = csrf_of(page)
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": mine_id, "label": "Work laptop <b>"}, allow_redirects=False)
    assert r.status_code == 303
    _, my_families, page = devices(portal, me)
    assert "<b>" not in my_families[0]["html"].split("</strong>")[0]  # escaped, never markup
    assert 'value="Work laptop &lt;b&gt;"' in my_families[0]["html"]
    # Too long: refused, the old label stays.
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": mine_id, "label": "x" * 61}, allow_redirects=False)
    assert r.status_code == 303
    after = me.get(portal.base + "/devices").text
    assert "60 characters" in flash_text(after)
    assert 'value="Work laptop &lt;b&gt;"' in devices(portal, me)[1][0]["html"]
    # Someone else's family: an error, and their family is neither renamed nor ended.
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": theirs_id, "label": "pwned"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "not yours" in flash_text(me.get(portal.base + "/devices").text)
    r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": theirs_id}, allow_redirects=False)
    assert r.status_code == 303
    assert "not yours" in flash_text(me.get(portal.base + "/devices").text)
    _, their_families, _ = devices(portal, them)
    assert len(their_families) == 1 and "pwned" not in their_families[0]["html"]
    assert refresh(portal, theirs["refresh_token"]).status_code == 200
    # Someone else's browser session id (the sid of their id_token): refused too.
    r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": claims_of(theirs["id_token"])["sid"]}, allow_redirects=False)
    assert r.status_code == 303
    assert signed_in(portal, them)
    for bad in ["", "nonexistent", "' OR 1=1 --"]:
        r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": bad}, allow_redirects=False)
        assert r.status_code == 303
    assert refresh(portal, mine["refresh_token"]).status_code == 200


def test_devices_revoke_others_leaves_exactly_this_browser(portal):
    add_user(portal, "dev-d")
    here = login(portal, "dev-d")
    there = login(portal, "dev-d")
    families = [code_flow(portal, here), code_flow(portal, there), code_flow(portal, there, client="rp-confidential", secret=RP_SECRET)]
    _, kubectl_rt = kubectl_command(portal, here)
    _, fams, page = devices(portal, here)
    assert len(fams) == 4
    assert sum("the kubectl page" in f["html"] for f in fams) == 1
    assert sum("from this browser" in f["html"] for f in fams) == 2
    assert 'action="/devices/revoke-others"' in page
    # First the question (nothing ends), then the confirmed POST.
    r = here.post(portal.base + "/devices/revoke-others", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status_code == 200 and "End everything except this browser?" in r.text and "4 kubectl or application sessions end" in r.text
    assert signed_in(portal, there)
    r = here.post(portal.base + "/devices/revoke-others", data={"csrf": csrf_of(r.text), "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    notice = flash_text(here.get(portal.base + "/devices").text)
    assert "1 other browser" in notice and "4 kubectl or application sessions" in notice, notice
    assert not signed_in(portal, there)
    assert signed_in(portal, here)
    assert_dead(refresh(portal, families[0]["refresh_token"]))
    assert_dead(refresh(portal, families[1]["refresh_token"]))
    assert_dead(refresh(portal, families[2]["refresh_token"], client="rp-confidential", secret=RP_SECRET))
    assert_dead(refresh_with(portal, kubectl_rt))
    browsers, fams, _ = devices(portal, here)
    assert len(browsers) == 1 and browsers[0]["current"] and not fams
    # This browser still signs in to applications.
    assert refresh(portal, code_flow(portal, here)["refresh_token"]).status_code == 200


# ---------------------------------------------------------------------------------------------
# 8. Password change


def test_password_change_ends_everything_else(portal):
    add_user(portal, "pw-a")
    here = login(portal, "pw-a")
    there = login(portal, "pw-a")
    app_here = code_flow(portal, here)
    app_there = code_flow(portal, there)
    _, kubectl_rt = kubectl_command(portal, here)
    page = here.get(portal.base + "/account/password")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    csrf = csrf_of(page.text)
    new = "a-brand-new-password-2"
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": "not-the-password", "password": new, "confirm": new})
    assert r.status_code == 403 and "Nothing was changed" in r.text
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": new, "confirm": new + "x"})
    assert r.status_code == 400 and "Nothing was changed" in r.text
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": "short", "confirm": "short"})
    assert r.status_code == 400
    r = here.post(portal.base + "/account/password", data={"current": PASSWORD, "password": new, "confirm": new}, allow_redirects=False)
    assert r.status_code == 403
    # Nothing changed so far.
    assert signed_in(portal, there)
    r = refresh(portal, app_there["refresh_token"])
    assert r.status_code == 200
    app_there = r.json()
    assert try_login(portal, "pw-a", PASSWORD)[1].status_code == 303
    assert try_login(portal, "pw-a", new)[1].status_code == 401
    # The change.
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": new, "confirm": new},
                  allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "Password changed" in flash_text(here.get(portal.base + "/devices").text)
    assert signed_in(portal, here)
    assert not signed_in(portal, there)
    assert_dead(refresh(portal, app_here["refresh_token"]))
    assert_dead(refresh(portal, app_there["refresh_token"]))
    assert_dead(refresh_with(portal, kubectl_rt))
    assert try_login(portal, "pw-a", PASSWORD)[1].status_code == 401
    assert try_login(portal, "pw-a", new)[1].status_code == 303
    assert PASSWORD not in portal.logs() and new not in portal.logs()


# ---------------------------------------------------------------------------------------------
# 9. Admin and CLI


def test_cli_session_list_and_revoke(portal):
    add_user(portal, "cli-a")
    b1 = login(portal, "cli-a")
    b2 = login(portal, "cli-a")
    app = code_flow(portal, b1)
    sid1 = claims_of(app["id_token"])["sid"]
    sid2 = claims_of(code_flow(portal, b2)["id_token"])["sid"]
    _, kubectl_rt = kubectl_command(portal, b1)
    _, fams, _ = devices(portal, b1)
    assert len(fams) == 3
    r = portal.cli("session", "list", "--user", "cli-a")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    header = out.splitlines()[0]
    for col in ("ID", "KIND", "CLIENT", "STARTED", "LAST USED", "ADDRESS", "DEVICE"):
        assert col in header, header
    cols = lambda line: [c.strip() for c in re.split(r"\t|\s{2,}", line.strip())]  # noqa: E731
    lines = {cols(line)[0]: cols(line) for line in out.splitlines()[1:] if line.strip()}
    assert sid1 in lines and sid2 in lines, out
    assert lines[sid1][1] == "browser" and lines[sid2][1] == "browser", out
    assert len(lines) == 5, out
    for f in fams:
        assert f["id"] in lines, out
    kinds = sorted((lines[f["id"]][1], lines[f["id"]][2]) for f in fams)
    assert kinds == [("app", "rp-public"), ("app", "rp-public"), ("kubectl", "kubernetes")], out
    assert portal.cli("session", "list", "--user", "no-such-person").returncode != 0
    # One browser session.
    r = portal.cli("session", "revoke", sid2)
    assert r.returncode == 0, r.stderr
    assert not signed_in(portal, b2) and signed_in(portal, b1)
    # One family.
    app_family = [f["id"] for f in fams if "Public test app" in f["html"] and "from this browser" in f["html"]][0]
    r = portal.cli("session", "revoke", app_family)
    assert r.returncode == 0, r.stderr
    assert_dead(refresh(portal, app["refresh_token"]))
    assert portal.cli("session", "revoke", "no-such-session").returncode != 0
    # Everything of the person.
    r = portal.cli("session", "revoke", "--user", "cli-a", "--all")
    assert r.returncode == 0, r.stderr
    assert not signed_in(portal, b1)
    assert_dead(refresh_with(portal, kubectl_rt))
    r = portal.cli("session", "list", "--user", "cli-a")
    assert r.returncode == 0 and len([line for line in r.stdout.splitlines()[1:] if line.strip()]) == 0, r.stdout


def test_admin_person_page_ends_one_browser_and_signs_out_everywhere(portal):
    add_user(portal, "sess-admin", admin=True)
    add_user(portal, "adm-a")
    admin = login(portal, "sess-admin")
    person = login(portal, "adm-a")
    second = login(portal, "adm-a")
    app = code_flow(portal, person)
    second_app = code_flow(portal, second)
    _, kubectl_rt = kubectl_command(portal, person)
    _, fams, _ = devices(portal, person)
    page = admin.get(portal.base + "/admin/users/adm-a")
    assert page.status_code == 200
    sid = claims_of(app["id_token"])["sid"]
    second_sid = claims_of(second_app["id_token"])["sid"]
    # Browser sessions and families together, each with its own button.
    assert sid in page.text and second_sid in page.text, "the person page does not list the browser sessions"
    for f in fams:
        assert f["id"] in page.text, "the person page does not list every family"
    assert "Sign out everywhere" in page.text and 'action="/admin/users/signout"' in page.text
    csrf = csrf_of(page.text)
    # Not for a non-admin.
    r = person.post(portal.base + "/admin/users/signout", data={"csrf": csrf_of(person.get(portal.base + "/").text), "username": "adm-a",
                                                                "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 403, r.status_code
    assert signed_in(portal, person)
    # One browser session, from the admin pages: it asks first, then ends that browser and what it started.
    r = admin.post(portal.base + "/admin/sessions/end", data={"csrf": csrf, "id": second_sid}, allow_redirects=False)
    assert r.status_code == 200 and 'name="confirm" value="yes"' in r.text
    assert signed_in(portal, second)
    r = admin.post(portal.base + "/admin/sessions/end", data={"csrf": csrf, "id": second_sid, "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 303
    assert not signed_in(portal, second) and signed_in(portal, person)
    assert_dead(refresh(portal, second_app["refresh_token"]))
    # Everywhere: a confirmation step naming what ends, then everything.
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf, "username": "adm-a"}, allow_redirects=False)
    assert r.status_code == 200 and 'name="confirm" value="yes"' in r.text
    assert "1 browser session" in r.text and "2 kubectl or application sessions" in r.text, re.sub(r"\s+", " ", r.text)[-1500:]
    assert signed_in(portal, person)
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf_of(r.text), "username": "adm-a", "confirm": "yes"},
                   allow_redirects=False)
    assert r.status_code == 303, r.status_code
    assert not signed_in(portal, person)
    assert_dead(refresh(portal, app["refresh_token"]))
    assert_dead(refresh_with(portal, kubectl_rt))
    assert signed_in(portal, admin)
    events = audit(portal, "admin.user.signout")
    assert any(e.get("actor") == "sess-admin" and e["details"].get("username") == "adm-a" and e["details"].get("sessions") == "1"
               and e["details"].get("families") == "2" for e in events), events
    # An unknown person: nothing, an error.
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf, "username": "nobody-at-all", "confirm": "yes"},
                   allow_redirects=False)
    assert r.status_code == 303 and "nobody-at-all" not in str([e["details"] for e in audit(portal, "admin.user.signout")])


# ---------------------------------------------------------------------------------------------
# 11. The real kubectl


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_kubectl_stops_with_the_portals_message_after_the_family_is_ended(env, version):
    portal, standin = env
    user = add_user(portal, "kube-" + version.replace(".", "-"))
    s = login(portal, user)
    page = s.get(portal.base + "/kubernetes").text
    r = s.post(portal.base + "/kubernetes/kubeconfig", data={"csrf": csrf_of(page), "cluster": CLUSTER, "variant": "oidc"})
    assert r.status_code == 200
    k = Kubectl(version)
    with open(k.kubeconfig, "w") as f:
        f.write(r.text)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:" + user
    _, fams, page = devices(portal, s)
    row = [f for f in fams if "a kubeconfig download" in f["html"]]
    assert len(row) == 1, [f["html"] for f in fams]
    r = s.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": row[0]["id"]}, allow_redirects=False)
    assert r.status_code == 303
    notice = flash_text(s.get(portal.base + "/devices").text)
    assert "sign in again at " + portal.issuer + "/kubernetes" in notice, notice
    cfg = k.user_config()
    wait_for_refresh_window(cfg)
    r = k.run("get", "pods")
    assert r.returncode != 0
    assert "invalid_grant" in r.stderr, r.stderr
    assert "sign in again at " + portal.issuer + "/kubernetes" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# 10. Two PostgreSQL replicas

PG = os.environ.get("PORTAL_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not PG, reason="PORTAL_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")


@pytest.fixture(scope="module")
def replicas():
    import uuid

    from test_replicas import psql
    name = "portal_sess_" + uuid.uuid4().hex[:12]
    psql(PG, f"CREATE DATABASE {name}")
    url = PG.rsplit("/", 1)[0] + "/" + name
    a = b = None
    try:
        a = Portal(extra_yaml=EXTRA_CLIENTS, database_url=url, env={"RS_SECRET": RS_SECRET})
        b = Portal(extra_yaml=EXTRA_CLIENTS, issuer=a.issuer, database_url=url, expect_setup_link=False, env={"RS_SECRET": RS_SECRET})
        yield a, b
    finally:
        for p in (a, b):
            if p and p.proc.poll() is None:
                p.stop()
        psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@needs_pg
def test_replicas_revocation_and_introspection_agree_at_once(replicas):
    a, b = replicas
    add_user(a, "rep-a")
    t = code_flow(b, login(a, "rep-a"), client="rp-confidential", secret=RP_SECRET)
    answers = [introspect(p, t["refresh_token"]).json() for p in (a, b)]
    assert answers[0]["active"] is True and answers[0] == answers[1]
    answers = [introspect(p, t["access_token"]).json() for p in (a, b)]
    assert answers[0]["token_type"] == "Bearer" and answers[0] == answers[1]
    assert revoke(a, t["refresh_token"], auth=("rp-confidential", RP_SECRET)).status_code == 200
    assert_dead(refresh(b, t["refresh_token"], client="rp-confidential", secret=RP_SECRET))
    assert userinfo(b, t["access_token"]).status_code == 401
    for p in (a, b):
        assert introspect(p, t["refresh_token"]).json() == {"active": False}
        assert introspect(p, t["access_token"]).json() == {"active": False}


@needs_pg
def test_replicas_rp_logout_at_a_ends_the_session_at_b(replicas):
    a, b = replicas
    add_user(a, "rep-b")
    s = login(b, "rep-b")
    t = code_flow(b, s, client="rp-logout")
    assert signed_in(b, s) and signed_in(a, s)
    r = end_session(a, s, id_token_hint=t["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="r")
    assert r.status_code == 303 and r.headers["Location"] == LOGGED_OUT + "?state=r"
    assert not signed_in(b, s)
    assert_dead(refresh(b, t["refresh_token"], client="rp-logout"))
    assert introspect(b, t["refresh_token"], auth=("rs-all", RS_SECRET)).json() == {"active": False}


# ---------------------------------------------------------------------------------------------
# Revocation with the database down: never a 200 that revoked nothing.


def test_revoke_and_introspect_answer_503_while_the_database_is_down():
    from test_db_outage import BIN, PrivateCluster
    if not BIN:
        pytest.skip("PostgreSQL server binaries are not installed")
    c = PrivateCluster()
    p = None
    try:
        p = Portal(extra_yaml=EXTRA_CLIENTS, database_url=c.url, database_options="  acquire_timeout: 2s\n", env={"RS_SECRET": RS_SECRET})
        add_user(p, "outage")
        pub = code_flow(p, login(p, "outage"))
        conf = code_flow(p, login(p, "outage"), client="rp-confidential", secret=RP_SECRET)
        c.stop()
        try:
            r = revoke(p, pub["refresh_token"], client_id="rp-public")
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", (r.status_code, r.text)
            r = revoke(p, conf["refresh_token"], auth=("rp-confidential", RP_SECRET))
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", (r.status_code, r.text)
            r = introspect(p, conf["refresh_token"])
            assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", (r.status_code, r.text)
        finally:
            c.start()
        # Back up: nothing was revoked meanwhile, and revocation works again.
        deadline = time.time() + 20
        while True:
            r = refresh(p, pub["refresh_token"])
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 200, r.text
        latest = r.json()["refresh_token"]
        assert revoke(p, latest, client_id="rp-public").status_code == 200
        assert_dead(refresh(p, latest))
    finally:
        if p and p.proc.poll() is None:
            p.stop()
        c.close()
