"""Issue 15, sessions that can end, through a real `portal serve` driven with `requests`:
RP-initiated logout (/end-session: hints good, tampered, forged, expired; redirect URIs registered
or not), the sign-out choice (this browser or everything, kubectl sessions included), and the
browser idle timeout. Revocation and introspection are in test_sessions_revocation.py, "Your
devices" and the admin and CLI ways in test_sessions_devices.py; the helpers in session_helpers.py.

Every test uses people of its own, so the module-scoped portals can be shared."""
import json
import re
import time
import urllib.parse

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from conftest import CALLBACK
from session_helpers import (LOGGED_OUT, add_user, assert_dead, audit, b64url, claims_of, code_flow, devices, end_session,
                             kubectl_command, login, main_portal, refresh, short_portal, signed_in, userinfo)
from test_hardening import csrf_of
from test_kubectl import pki, refresh_with  # noqa: F401 (pki is a fixture)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def env(pki):  # noqa: F811
    """The main portal and its stand-in API server: (portal, standin)."""
    with main_portal(pki) as e:
        yield e


@pytest.fixture(scope="module")
def portal(env):
    return env[0]


@pytest.fixture(scope="module")
def short():
    """Short-lived browser sessions and id_tokens."""
    with short_portal() as p:
        yield p


# ---------------------------------------------------------------------------------------------
# 1. RP-initiated logout


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
# 2. The sign-out choice


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
# 3. Idle timeout


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
