"""Black-box tests: a real portal process, a real relying-party library (authlib), JWKS verification (joserfc)."""
import base64
import hashlib
import json
import re
import time
import urllib.parse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import ExpiredTokenError
from joserfc.jwk import KeySet

from conftest import CALLBACK, RP_SECRET

ALICE_PASSWORD = "correct horse battery staple ✓ *()\\"


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the form"
    return m.group(1)


def browser_login(portal, session, authorize_url, username, password):
    """Follows /authorize → /login like a browser; returns the final redirect Location."""
    r = session.get(authorize_url, allow_redirects=False)
    assert r.status_code == 302, r.text
    login_url = urllib.parse.urljoin(portal.issuer, r.headers["Location"])
    assert login_url.startswith(portal.issuer + "/login?req=")
    r = session.get(login_url)
    assert r.status_code == 200
    req = urllib.parse.parse_qs(urllib.parse.urlparse(login_url).query)["req"][0]
    r = session.post(portal.issuer + "/login", data={"csrf": csrf_of(r.text), "req": req, "username": username,
                                                     "password": password}, allow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["Location"]


@pytest.fixture(scope="module")
def admin(portal):
    s = requests.Session()
    r = s.get(portal.setup_url)
    assert r.status_code == 200 and "Create the first administrator" in r.text
    form = {"csrf": csrf_of(r.text), "token": urllib.parse.parse_qs(urllib.parse.urlparse(portal.setup_url).query)["token"][0],
            "username": "root-admin", "password": "admin-password-1", "confirm": "admin-password-1"}
    r = s.post(portal.issuer + "/setup", data=form, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/"
    home = s.get(portal.issuer + "/")
    assert "root-admin" in home.text and "administrator" in home.text
    # The link is single use.
    again = requests.Session()
    r = again.get(portal.setup_url)
    assert r.status_code == 410
    return s


@pytest.fixture(scope="module")
def alice(portal, admin):
    r = portal.cli("user", "add", "alice", "--password-stdin", "--email", "alice@example.org", "--name", "Alice Liddell",
                   "--group", "dev", "--group", "ops", stdin=ALICE_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "created user alice" in r.stdout
    # A second user with the same name is refused and nothing changes.
    r = portal.cli("user", "add", "ALICE", "--password-stdin", stdin="another-password\n")
    assert r.returncode != 0 and "already exists" in r.stderr
    return "alice"


def discovery(portal):
    return requests.get(portal.issuer + "/.well-known/openid-configuration").json()


def jwks(portal):
    return KeySet.import_key_set(requests.get(portal.issuer + "/keys").json())


def verify_id_token(portal, token, client_id, nonce=None, now=None):
    decoded = jwt.decode(token, jwks(portal), algorithms=["RS256", "ES256"])
    options = {"iss": {"essential": True, "value": portal.issuer}, "aud": {"essential": True, "value": client_id},
               "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True}}
    if nonce:
        options["nonce"] = {"essential": True, "value": nonce}
    jwt.JWTClaimsRegistry(now=now, **options).validate(decoded.claims)
    return decoded


def at_hash(access_token):
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_authlib_code_flow_with_pkce_refresh_rotation_and_replay(portal, alice):
    meta = discovery(portal)
    assert meta["issuer"] == portal.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]

    rp = OAuth2Session("rp-public", redirect_uri=CALLBACK, scope="openid profile email groups offline_access",
                       code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    browser = requests.Session()
    location = browser_login(portal, browser, url, "Alice", ALICE_PASSWORD)  # login names are case-insensitive
    assert location.startswith(CALLBACK + "?")
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    assert params["state"] == [state]
    assert params["iss"] == [portal.issuer]  # RFC 9207

    token = rp.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60

    decoded = verify_id_token(portal, token["id_token"], "rp-public", nonce=nonce)
    c = decoded.claims
    assert c["exp"] - c["iat"] == 60
    assert c["at_hash"] == at_hash(token["access_token"])
    assert c["preferred_username"] == "alice" and c["name"] == "Alice Liddell"
    assert c["email"] == "alice@example.org" and c["email_verified"] is True
    assert sorted(c["groups"]) == ["dev", "ops"]
    assert c["sub"] not in ("alice", "alice@example.org")
    assert decoded.header["alg"] == "RS256" and decoded.header["kid"]
    # The id_token is dead 60 s after issue.
    with pytest.raises(ExpiredTokenError):
        verify_id_token(portal, token["id_token"], "rp-public", nonce=nonce, now=c["iat"] + 61)

    info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": "Bearer " + token["access_token"]})
    assert info.status_code == 200 and info.json()["sub"] == c["sub"]

    # Refresh rotates: a new refresh token, same subject and auth_time.
    first_refresh = token["refresh_token"]
    time.sleep(1.1)
    refreshed = rp.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    c2 = verify_id_token(portal, refreshed["id_token"], "rp-public").claims
    assert c2["sub"] == c["sub"] and c2["auth_time"] == c["auth_time"] and c2["iss"] == c["iss"] and c2["aud"] == c["aud"]

    # Replaying the first refresh token (after the grace window) kills the whole family.
    time.sleep(6)
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": first_refresh,
                                                    "client_id": "rp-public"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.headers["Cache-Control"] == "no-store"
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
                                                    "client_id": "rp-public"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The userinfo endpoint refuses access tokens of the revoked family too.
    info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": "Bearer " + refreshed["access_token"]})
    assert info.status_code == 401 and 'error="invalid_token"' in info.headers["WWW-Authenticate"]
    # The replay is in the audit log, naming the family and the client.
    r = portal.cli("audit", "--type", "token.replay", "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events and events[0]["client_id"] == "rp-public" and events[0]["success"] is False
    assert events[0]["details"]["family"]
    # No token or secret ever reaches the logs.
    logs = portal.logs()
    for secret in [first_refresh, refreshed["refresh_token"], token["access_token"], ALICE_PASSWORD, verifier]:
        assert secret not in logs


def test_confidential_client_with_basic_auth_and_kubectl_style_public_refresh(portal, alice):
    meta = discovery(portal)
    rp = OAuth2Session("rp-confidential", RP_SECRET, redirect_uri=CALLBACK, scope="openid groups",
                       token_endpoint_auth_method="client_secret_basic")
    url, _ = rp.create_authorization_url(meta["authorization_endpoint"], nonce="n-123")
    location = browser_login(portal, requests.Session(), url, "alice", ALICE_PASSWORD)
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=location)
    claims = verify_id_token(portal, token["id_token"], "rp-confidential", nonce="n-123").claims
    assert "email" not in claims  # not asked for
    # A wrong secret is refused with 401 and consumes nothing: the same refresh token still works.
    bad = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                        auth=("rp-confidential", "wrong-secret"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.headers["WWW-Authenticate"].startswith("Basic")
    good = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                                                       "client_id": "rp-confidential", "client_secret": RP_SECRET})
    assert good.status_code == 200, good.text


def test_code_replay_is_refused_and_revokes_the_first_family(portal, alice):
    meta = discovery(portal)
    rp = OAuth2Session("rp-public", redirect_uri=CALLBACK, scope="openid", code_challenge_method="S256",
                       token_endpoint_auth_method="none")
    verifier = generate_token(50)
    url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    location = browser_login(portal, requests.Session(), url, "alice", ALICE_PASSWORD)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_id": "rp-public"}
    first = requests.post(meta["token_endpoint"], data=form)
    assert first.status_code == 200
    second = requests.post(meta["token_endpoint"], data=form)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "client_id": "rp-public",
                                                    "refresh_token": first.json()["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect_uri", [
    CALLBACK + "/", CALLBACK.replace("callback", "CALLBACK"), CALLBACK + "?x=1", CALLBACK + "#frag",
    "http://evil.example/callback", "javascript:alert(1)",
])
def test_bad_redirect_uri_is_shown_as_a_page_never_redirected(portal, redirect_uri):
    q = urllib.parse.urlencode({"client_id": "rp-public", "redirect_uri": redirect_uri, "response_type": "code",
                                "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                                "code_challenge_method": "S256"})
    r = requests.get(portal.issuer + "/authorize?" + q, allow_redirects=False)
    assert r.status_code == 400
    assert "Location" not in r.headers
    assert "text/html" in r.headers["Content-Type"] and "not set up correctly" in r.text


def test_token_endpoint_refuses_malformed_requests(portal):
    t = portal.issuer + "/token"
    r = requests.get(t)
    assert r.status_code == 405 and r.json()["error"] == "invalid_request"
    r = requests.post(t, data="grant_type=refresh_token&grant_type=refresh_token&refresh_token=x&client_id=rp-public",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(t, data="x=" + "a" * (1024 * 1024), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
    r = requests.post(t, json={"grant_type": "refresh_token"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(t, data={"grant_type": "password", "client_id": "rp-public", "username": "a", "password": "b"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    for token in ["short", "A" * 43 + "=", "A" * 44]:
        r = requests.post(t, data={"grant_type": "refresh_token", "client_id": "rp-public", "refresh_token": token})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_login_form_needs_csrf_and_gives_one_answer_for_unknown_user_and_wrong_password(portal, alice):
    s = requests.Session()
    r = s.get(portal.issuer + "/login")
    csrf = csrf_of(r.text)
    r = s.post(portal.issuer + "/login", data={"username": "alice", "password": ALICE_PASSWORD}, allow_redirects=False)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    r = s.post(portal.issuer + "/login", data={"csrf": csrf + "x", "username": "alice", "password": ALICE_PASSWORD},
               allow_redirects=False)
    assert r.status_code == 403
    wrong = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "alice", "password": "nope-nope"})
    unknown = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect username or password." in wrong.text and "Incorrect username or password." in unknown.text
    ok = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "alice", "password": ALICE_PASSWORD},
                allow_redirects=False)
    assert ok.status_code == 303


def test_userinfo_refuses_tampered_and_unsigned_tokens(portal):
    u = portal.issuer + "/userinfo"
    r = requests.get(u)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"iss": portal.issuer, "sub": "x", "exp": 9999999999, "sid": "x"}).encode()).rstrip(b"=").decode()
    # Access tokens are kpa_<claims>.<HMAC>: forged claims with no MAC or a made-up one are refused too.
    mac = base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
    for token in [f"{header}.{body}.", f"{header}.{body}.c2ln", "not-a-jwt", f"kpa_{body}.", f"kpa_{body}.{mac}"]:
        r = requests.get(u, headers={"Authorization": "Bearer " + token})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_cli_disable_ends_refresh_and_audit_is_written(portal, alice):
    meta = discovery(portal)
    r = portal.cli("user", "add", "bob", "--password-stdin", "--group", "dev", stdin="bob-password-1\n")
    assert r.returncode == 0, r.stderr
    rp = OAuth2Session("rp-public", redirect_uri=CALLBACK, scope="openid", code_challenge_method="S256",
                       token_endpoint_auth_method="none")
    verifier = generate_token(50)
    url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    location = browser_login(portal, requests.Session(), url, "bob", "bob-password-1")
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    r = portal.cli("user", "disable", "bob")
    assert r.returncode == 0, r.stderr
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "client_id": "rp-public",
                                                    "refresh_token": token["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert portal.cli("user", "disable", "nobody-here").returncode != 0


def test_check_config_reports_every_problem_with_its_location(portal, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("issuer: http://example.com\nlisten: nowhere\ntokens:\n  id_token_lifetme: 60s\n  code_lifetime: forever\n")
    import subprocess
    from conftest import PORTAL_BIN
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
    out = r.stdout
    assert "bad.yaml:2:9: listen" in out
    assert "id_token_lifetme: unknown key (did you mean 'id_token_lifetime'?)" in out
    assert "tokens.code_lifetime" in out and "issuer" in out and "loopback" in out
    ok = subprocess.run([PORTAL_BIN, "check-config", "--config", portal.config], capture_output=True, text=True,
                        env=portal.env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
