"""Issue 15, sessions that can end, through a real `portal serve` driven with `requests`: discovery
and `sid`, RFC 7009 revocation, RFC 7662 introspection, both on two PostgreSQL replicas (when
PORTAL_TEST_POSTGRES_URL is set), and revocation with the database down. RP-initiated logout and
the sign-out choice are in test_sessions_logout.py, "Your devices", the password change, the admin
and CLI ways and the real kubectl in test_sessions_devices.py; the helpers in session_helpers.py.

Every test uses people of its own, so the module-scoped portals can be shared."""
import os
import secrets
import time

import pytest
import requests

from conftest import RP_SECRET, Portal
from session_helpers import (EXCHANGE, EXTRA_CLIENTS, LIFETIME, LOGGED_OUT, RS_SECRET, add_user, assert_dead, audit, b64url,
                             claims_of, code_flow, end_session, introspect, login, main_portal, refresh, revoke, signed_in,
                             userinfo)
from test_kubectl import pki  # noqa: F401 (a fixture)


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
# 4. Two PostgreSQL replicas

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
# 5. Revocation with the database down: never a 200 that revoked nothing.


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
