"""Issue 15 with a real relying party: Apache httpd + mod_auth_openidc (Debian's 2.4.12) in front of
/protected/, signed in through the portal's own login form, then signed out three ways:
RP-initiated logout (the module's logout URL -> the portal's end_session_endpoint with id_token_hint),
token revocation (the module calls the portal's revocation_endpoint at logout), and back-channel
logout (the portal POSTs a logout_token to the module when the person signs out at the portal).
Both servers run on loopback with their own temp dirs; one requests.Session plays the browser
(cookies are per host, not per port: the portal's and Apache's cookies share a jar, names differ)."""
import base64
import json
import re
import shutil
import time
import urllib.parse

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

import rp_apache
from conftest import Portal, free_port
from rp_apache import ApacheRP

pytestmark = pytest.mark.skipif(rp_apache.missing() is not None, reason=str(rp_apache.missing()))

PASSWORD = "rp-logout-password-1"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]


@pytest.fixture(scope="module")
def servers():
    aport = free_port()
    # The Apache client goes into conftest's `clients:` list; its URIs name Apache's port, chosen first.
    p = Portal(extra_yaml=ApacheRP.client_yaml(aport), env={"APACHE_RP_SECRET": ApacheRP.SECRET})
    rp = None
    try:
        subs = {}
        for user in USERS:
            r = p.cli("user", "add", user, "--password-stdin", "--email", f"{user}@example.org", "--name", user.title(),
                      stdin=PASSWORD + "\n")
            assert r.returncode == 0, r.stderr
            subs[user] = re.search(r"subject ([0-9a-f-]+)", r.stdout).group(1)
        rp = ApacheRP(p, port=aport)
        yield p, rp, subs
    finally:
        if rp:
            rp.cleanup()
        code = p.stop()
        shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly on SIGTERM"


@pytest.fixture(scope="module")
def portal(servers):
    return servers[0]


@pytest.fixture(scope="module")
def rp(servers):
    return servers[1]


@pytest.fixture(scope="module")
def subs(servers):
    return servers[2]


# --- helpers ---------------------------------------------------------------------------------------

def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page:\n" + html[:2000]
    return m.group(1)


def discovery(portal):
    return requests.get(portal.base + "/.well-known/openid-configuration").json()


def verified_id_token(portal, token, client_id):
    keys = KeySet.import_key_set(requests.get(portal.base + "/keys").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": portal.issuer},
                          aud={"essential": True, "value": client_id}).validate(decoded.claims)
    return decoded.claims


def on_login_form(portal, r):
    """The response is the portal's password form, reached through /authorize."""
    return r.status_code == 200 and r.url.startswith(portal.base + "/login?req=") and 'name="password"' in r.text


def sign_in(portal, rp, user, s=None):
    """A browser opens /protected/, is sent to the portal, types the password and lands back on
    /protected/. Returns (session, final response)."""
    s = s or requests.Session()
    r = s.get(rp.protected)
    assert r.history and r.history[0].status_code == 302, "Apache did not send the browser to the portal:\n" + rp.logs()
    authorize = r.history[0].headers["Location"]
    assert authorize.startswith(portal.issuer + "/authorize?"), authorize
    assert on_login_form(portal, r), (r.status_code, r.url, r.text[:500])
    req = urllib.parse.parse_qs(urllib.parse.urlparse(r.url).query)["req"][0]
    r = s.post(portal.base + "/login", data={"csrf": csrf_of(r.text), "req": req, "username": user, "password": PASSWORD})
    assert r.status_code == 200 and r.url == rp.protected, (r.status_code, r.url, r.text[:500], rp.logs()[-3000:])
    assert r.headers.get("X-User") == user
    return s, r


def protected_status(rp, s):
    """What /protected/ does for this browser now, without following: 200 or Apache's 302 to the portal."""
    return s.get(rp.protected, allow_redirects=False)


def portal_signed_in(portal, s):
    r = s.get(portal.base + "/", allow_redirects=False)
    if r.status_code == 200:
        return True
    assert r.status_code in (302, 303) and urllib.parse.urlparse(r.headers["Location"]).path == "/login", \
        (r.status_code, r.headers)
    return False


def introspect(portal, rp, token, hint=None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    r = requests.post(portal.base + "/introspect", data=data, auth=(rp.client_id, rp.client_secret))
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def refresh(portal, rp, token):
    return requests.post(portal.base + "/token", data={"grant_type": "refresh_token", "refresh_token": token},
                         auth=(rp.client_id, rp.client_secret))


def families_of(portal, user, client_id):
    r = portal.cli("session", "list", "--user", user)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if re.search(rf"(^|\s){re.escape(client_id)}(\s|$)", line)]


def tampered(token):
    """The same JWT with one byte of its signature changed."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def audit(portal, type_):
    r = portal.cli("audit", "--type", type_, "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


# --- tests -----------------------------------------------------------------------------------------

def test_sign_in_through_apache_shows_the_person(portal, rp, subs):
    s, r = sign_in(portal, rp, "alice")
    assert r.headers["X-Sub"] == subs["alice"]
    id_token = r.headers["X-Id-Token"]
    claims = verified_id_token(portal, id_token, rp.client_id)
    assert claims["sub"] == subs["alice"] and claims["preferred_username"] == "alice"
    assert "protected page" in r.text
    # The module's session carries on without the portal: the next visit is served at once.
    again = protected_status(rp, s)
    assert again.status_code == 200 and again.headers["X-Sub"] == subs["alice"]
    # Another browser is not signed in: it is sent to the portal's authorization endpoint, for this client.
    other = protected_status(rp, requests.Session())
    assert other.status_code == 302
    q = urllib.parse.parse_qs(urllib.parse.urlparse(other.headers["Location"]).query)
    assert q["client_id"] == [rp.client_id] and q["redirect_uri"] == [rp.redirect_uri]
    assert q["code_challenge_method"] == ["S256"] and "openid" in q["scope"][0].split()


def test_discovery_and_tokens_carry_what_the_relying_party_needs_for_logout(portal, rp, subs):
    meta = discovery(portal)
    assert meta["end_session_endpoint"] == portal.issuer + "/end-session"
    assert meta["revocation_endpoint"] == portal.issuer + "/revoke"
    assert meta["introspection_endpoint"] == portal.issuer + "/introspect"
    assert meta["backchannel_logout_supported"] is True and meta["backchannel_logout_session_supported"] is True
    assert "sid" in meta["claims_supported"]
    s, r = sign_in(portal, rp, "alice")
    claims = verified_id_token(portal, r.headers["X-Id-Token"], rp.client_id)
    assert claims.get("sid") and r.headers["X-Sid"] == claims["sid"]
    # The refresh token the module holds belongs to that browser session.
    info = introspect(portal, rp, r.headers["X-Refresh-Token"], "refresh_token")
    assert info["active"] is True and info["client_id"] == rp.client_id and info["sub"] == subs["alice"]
    assert info["sid"] == claims["sid"] and info["token_type"] == "refresh_token" and info["username"] == "alice"
    # sid names the portal browser session this sign-in came from ...
    browser_rows = [line.split() for line in portal.cli("session", "list", "--user", "alice").stdout.splitlines()
                    if re.search(r"\sbrowser\s", line)]
    assert claims["sid"] in [row[0] for row in browser_rows], browser_rows
    # ... and stays the same when the family is refreshed.
    r = refresh(portal, rp, r.headers["X-Refresh-Token"])
    assert r.status_code == 200, r.text
    assert verified_id_token(portal, r.json()["id_token"], rp.client_id)["sid"] == claims["sid"]


def test_rp_initiated_logout_ends_the_portal_session_and_asks_for_the_password_again(portal, rp, subs):
    end_session = discovery(portal).get("end_session_endpoint")
    assert end_session == portal.issuer + "/end-session", "no end_session_endpoint in discovery"
    s, r = sign_in(portal, rp, "bob")
    id_token = r.headers["X-Id-Token"]
    assert portal_signed_in(portal, s)
    before = requests.utils.dict_from_cookiejar(s.cookies)
    assert "mod_auth_openidc_session" in before

    r = s.get(rp.logout_url())
    hops = [h.headers.get("Location", "") for h in r.history]
    # Apache -> the portal's end_session_endpoint with the id_token as hint and the post-logout URL.
    assert hops and hops[0].startswith(end_session + "?"), hops
    q = urllib.parse.parse_qs(urllib.parse.urlparse(hops[0]).query)
    assert q["id_token_hint"] == [id_token] and q["post_logout_redirect_uri"] == [rp.logged_out]
    # The portal -> the registered post-logout URL (303), which Apache serves.
    assert r.history[1].url.startswith(end_session) and r.history[1].status_code == 303, \
        (r.history[1].status_code, r.history[1].text[:500])
    assert r.status_code == 200 and r.url == rp.logged_out and "logged out" in r.text

    # The portal session is over, in this browser and for anyone replaying its old cookies.
    assert not portal_signed_in(portal, s)
    replay = requests.Session()
    replay.cookies.update(before)
    assert not portal_signed_in(portal, replay), "the portal session survived RP-initiated logout on the server"
    # Apache's session is gone too: a new visit goes through the portal, which asks for the password.
    r = s.get(rp.protected)
    assert on_login_form(portal, r), (r.status_code, r.url)
    assert r.history[0].headers["Location"].startswith(portal.issuer + "/authorize?")
    r = replay.get(rp.protected)
    assert on_login_form(portal, r), "the old Apache session cookie still opens /protected/"
    # Signing in again works and shows the same person.
    _, r = sign_in(portal, rp, "bob", s)
    assert r.headers["X-Sub"] == subs["bob"]


def test_apache_revokes_its_refresh_token_family_at_logout(portal, rp, subs):
    """Only the module's call to the revocation_endpoint: the browser is not sent on to end-session,
    so the portal session stays, and what ended was the module's token family alone."""
    s, r = sign_in(portal, rp, "carol")
    access, refresh_token = r.headers["X-Access-Token"], r.headers["X-Refresh-Token"]
    assert access.startswith("kpa_") and refresh_token
    assert len(families_of(portal, "carol", rp.client_id)) == 1
    assert introspect(portal, rp, refresh_token)["active"] is True
    assert requests.get(portal.base + "/userinfo", headers={"Authorization": "Bearer " + access}).status_code == 200

    r = s.get(rp.logout_url(), allow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["Location"].startswith(portal.issuer + "/end-session?"), \
        (r.status_code, r.headers, rp.logs()[-3000:])

    assert families_of(portal, "carol", rp.client_id) == [], "the module's family is still listed after /revoke"
    assert introspect(portal, rp, refresh_token, "refresh_token") == {"active": False}
    assert introspect(portal, rp, access, "access_token") == {"active": False}
    r = requests.get(portal.base + "/userinfo", headers={"Authorization": "Bearer " + access})
    assert r.status_code == 401
    r = refresh(portal, rp, refresh_token)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # /revoke ends tokens, not the person's portal session: that is end-session's job.
    assert portal_signed_in(portal, s)


def test_backchannel_logout_when_the_person_signs_out_at_the_portal(portal, rp, subs):
    s, r = sign_in(portal, rp, "dave")
    refresh_token = r.headers["X-Refresh-Token"]
    assert protected_status(rp, s).status_code == 200
    sent_before = len(audit(portal, "logout.backchannel"))

    home = s.get(portal.base + "/")
    form = re.search(r'<form[^>]*action="/logout"[^>]*>.*?</form>', home.text, re.S)
    assert home.status_code == 200 and form, "no sign-out form on the home page"
    r = s.post(portal.base + "/logout", data={"csrf": csrf_of(form.group(0)), "end": "browser"}, allow_redirects=False)
    assert r.status_code == 303 and urllib.parse.urlparse(r.headers["Location"]).path == "/login", (r.status_code, r.text)
    assert not portal_signed_in(portal, s)

    # The portal told Apache in the background: within seconds /protected/ sends the browser away.
    deadline = time.time() + 10
    while time.time() < deadline:
        r = protected_status(rp, s)
        if r.status_code != 200:
            break
        time.sleep(0.25)
    assert r.status_code == 302 and r.headers["Location"].startswith(portal.issuer + "/authorize?"), \
        (r.status_code, r.headers, rp.logs()[-4000:])
    # ... and since the portal session is gone too, to the password form.
    assert on_login_form(portal, s.get(rp.protected))

    # Audited once the delivery is answered (newest first).
    deadline = time.time() + 5
    while True:
        events = audit(portal, "logout.backchannel")
        new = events[: len(events) - sent_before]
        if any(e["success"] is True and rp.client_id in json.dumps(e) for e in new) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert any(e["success"] is True and rp.client_id in json.dumps(e) for e in new), events
    assert introspect(portal, rp, refresh_token) == {"active": False}
    mine = [e for e in audit(portal, "logout") if "dave" in (e["actor"], e["subject"]) or subs["dave"] in (e["actor"], e["subject"])]
    assert mine and mine[0]["details"].get("ended") == "browser" and mine[0]["details"].get("families") == "1", mine


def test_end_session_refuses_a_tampered_hint_and_ends_nothing(portal, rp, subs):
    end_session = portal.base + "/end-session"
    s, r = sign_in(portal, rp, "erin")
    id_token, refresh_token = r.headers["X-Id-Token"], r.headers["X-Refresh-Token"]
    bad = tampered(id_token)
    assert bad != id_token
    # One byte of the signature altered: 400 (GET and POST alike), never a redirect, and nothing ends.
    r = s.get(end_session, params={"id_token_hint": bad, "post_logout_redirect_uri": rp.logged_out}, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers, (r.status_code, r.text[:500])
    r = s.post(end_session, data={"id_token_hint": bad, "post_logout_redirect_uri": rp.logged_out}, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers, (r.status_code, r.text[:500])
    # A valid hint with a client_id that is not its audience: 400 too.
    r = s.get(end_session, params={"id_token_hint": id_token, "client_id": "rp-confidential",
                                   "post_logout_redirect_uri": rp.logged_out}, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers, (r.status_code, r.text[:500])
    assert portal_signed_in(portal, s), "the portal session ended"
    assert protected_status(rp, s).status_code == 200, "the Apache session ended"
    assert introspect(portal, rp, refresh_token)["active"] is True, "the module's refresh token was revoked"


def test_end_session_never_redirects_to_an_unregistered_uri(portal, rp, subs):
    end_session = portal.base + "/end-session"
    s, r = sign_in(portal, rp, "frank")
    id_token, refresh_token = r.headers["X-Id-Token"], r.headers["X-Refresh-Token"]

    # A valid hint but a post-logout URI not registered (exactly) for its client: the confirmation page
    # (a POST form to /logout), never a redirect, and nothing ends until the person confirms.
    for uri in [rp.base + "/elsewhere.html", "https://evil.example/cb", rp.logged_out + "?x=1", rp.logged_out + "/"]:
        r = s.get(end_session, params={"id_token_hint": id_token, "post_logout_redirect_uri": uri, "state": "st"},
                  allow_redirects=False)
        assert r.status_code == 200 and "Location" not in r.headers, (uri, r.status_code, r.headers)
        assert 'action="/logout"' in r.text and 'name="csrf"' in r.text, r.text[:2000]
        assert not re.search(r'http-equiv=["\']?refresh', r.text, re.I)
        assert f'href="{uri}"' not in r.text and f"href='{uri}'" not in r.text
        assert portal_signed_in(portal, s), f"the portal session ended without confirmation ({uri})"
        assert protected_status(rp, s).status_code == 200
        assert introspect(portal, rp, refresh_token)["active"] is True, f"the module's family was revoked ({uri})"

    # The control: the same request with the registered URI ends the session and goes back, state appended.
    r = s.get(end_session, params={"id_token_hint": id_token, "post_logout_redirect_uri": rp.logged_out, "state": "st"},
              allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == rp.logged_out + "?state=st", (r.status_code, r.headers)
    assert not portal_signed_in(portal, s)
    # The hint's client's family from that session is revoked too (the module never called /revoke here).
    assert introspect(portal, rp, refresh_token) == {"active": False}
