"""Passkeys (WebAuthn), issue 17, with the software authenticator of softauthn.py (requests, like
the page script: POST /webauthn/options, then the `credential` field) for everything a browser would
never send. Real Chromium is in test_passkeys_browser.py, malformed input in test_passkeys_fuzz.py.

ES256, EdDSA and RS256 with "none" and packed self attestation; the options (the three algorithms,
a discoverable credential, UV asked for, single-use challenges); BE → "swk"; a passkey without UV is
only a second factor; every refusal the contract names (wrong origin, wrong RP id hash, bad
signature, lower counter, unknown credential, reused challenge, challenge of another browser,
packed x5c, no UP, no UV for a passkey alone) is a 4xx and changes nothing.
"""
import json
import os

import pytest
import requests

import softauthn as sa
from conftest import Portal
from passkey_helpers import (RP_ID, Web, add_user, amr_of, assert_refused, assert_signed_in, assert_two_factor_amr, audit,
                             claims_of, enrolled, factor_rows, finish_portal, location, mentions, passkey_factor, passkey_login,
                             register, signed_in_with_password, to_factor_page, tokens_of)


@pytest.fixture(scope="module")
def portal():
    p = Portal(issuer_host="localhost")
    yield p
    finish_portal(p)


# ---------------------------------------------------------------------------------------------
# 1. The software authenticator itself


def test_softauthn_passes_its_self_checks():
    """CBOR vectors of RFC 8949, and each algorithm's registration and assertion checked by the
    independent verifier; every break-it knob really breaks what it should."""
    assert sa.selftest()


# ---------------------------------------------------------------------------------------------
# 2. softauthn: algorithms, attestation formats, backup flags


@pytest.mark.parametrize("fmt", ["none", "packed-self"])
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_every_algorithm_registers_and_signs_in(portal, alg, fmt):
    user, auth = enrolled(portal, alg, prefix=f"alg{alg.lower()}", fmt=fmt)
    # As the second factor after the password…
    web, r = passkey_factor(portal, user, auth)
    assert_signed_in(web, r)
    assert_two_factor_amr(amr_of(web), "hwk")
    # …and alone (UV).
    web, r = passkey_login(portal, auth)
    assert_signed_in(web, r)
    assert amr_of(web) == ["hwk", "user", "mfa"]


def test_the_options_offer_the_three_algorithms_and_ask_for_a_discoverable_credential_with_uv(portal):
    user = add_user(portal, "opts")
    web = signed_in_with_password(portal, user)
    pk = web.options(web.csrf("/account/factors"), "register")["publicKey"]
    assert {-7, -8, -257} <= {p.get("alg") for p in pk["pubKeyCredParams"]}, pk["pubKeyCredParams"]
    assert pk["rp"]["id"] == RP_ID, pk["rp"]
    assert sa.unb64url(pk["user"]["id"]) and pk["user"]["name"] == user, pk["user"]
    assert len(sa.unb64url(pk["challenge"])) >= 16
    # "Sign in with a passkey" has no username: the credential must be discoverable.
    assert (pk.get("authenticatorSelection") or {}).get("residentKey") in ("required", "preferred"), pk.get("authenticatorSelection")
    anon = Web(portal)
    pk = anon.options(anon.csrf("/login"), "login")["publicKey"]
    assert pk.get("rpId", RP_ID) == RP_ID and not pk.get("allowCredentials"), pk
    # A passkey alone needs UV: the browser must be asked for it.
    assert pk.get("userVerification") in ("required", "preferred"), pk
    # Single use: a second options request gets another challenge.
    assert anon.options(anon.csrf("/login"), "login")["publicKey"]["challenge"] != pk["challenge"]


def test_a_backup_eligible_passkey_is_swk(portal):
    user, auth = enrolled(portal, prefix="synced", be=True)
    web, r = passkey_factor(portal, user, auth)
    assert_signed_in(web, r)
    assert_two_factor_amr(amr_of(web), "swk")
    web, r = passkey_login(portal, auth)
    assert_signed_in(web, r)
    tokens = tokens_of(portal, web.s)
    assert claims_of(tokens["id_token"])["amr"] == ["swk", "user", "mfa"]
    # A refreshed id_token carries the amr of the sign-in that started the refresh family.
    r = requests.post(portal.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                                      "client_id": "rp-public"}, timeout=15)
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["id_token"])["amr"] == ["swk", "user", "mfa"]


def test_a_passkey_without_user_verification_is_only_a_second_factor(portal):
    user, auth = enrolled(portal, prefix="nouv")
    web, r = passkey_login(portal, auth, uv=False)
    assert_refused(web, r, 401, "passkey alone without UV")
    web, r = passkey_factor(portal, user, auth, uv=False)
    assert_signed_in(web, r)
    assert_two_factor_amr(amr_of(web), "hwk")


# ---------------------------------------------------------------------------------------------
# 3. softauthn: what must be refused


def other_browser_challenge(p, auth, purpose="login"):
    """An assertion over a challenge issued to another browser."""
    other = Web(p)
    return other.options(other.csrf("/login"), purpose)["publicKey"]["challenge"]


ASSERTION_BREAKS = {
    "wrong origin": dict(origin="http://evil.example:1234"),
    "wrong origin port": dict(origin_port_shift=1),
    "https origin": dict(origin_scheme="https"),
    "wrong rp id hash": dict(rp_id="evil.example"),
    "tampered signature": dict(tamper=True),
    "wrong clientData type": dict(type_="webauthn.create"),
    "no user presence": dict(up=False),
    "challenge never issued": dict(challenge=sa.b64url(os.urandom(32))),
}


def _assert_kw(p, kw):
    kw = dict(kw)
    origin = p.issuer
    if kw.pop("origin_port_shift", None):
        origin = f"http://localhost:{p.port + 1}"
    if kw.pop("origin_scheme", None):
        origin = p.issuer.replace("http://", "https://")
    origin = kw.pop("origin", origin)
    return origin, kw


@pytest.mark.parametrize("case", list(ASSERTION_BREAKS))
def test_a_broken_assertion_is_refused_alone_and_as_a_second_factor(portal, case):
    user, auth = enrolled(portal, prefix="brk")
    origin, kw = _assert_kw(portal, ASSERTION_BREAKS[case])

    web = Web(portal)
    csrf = web.csrf("/login")
    cred = auth.assert_(web.options(csrf, "login"), origin, kw.pop("rp_id", RP_ID), **kw)
    assert_refused(web, web.post("/login/passkey", {"csrf": csrf, "credential": json.dumps(cred)}), 401, case)

    origin, kw = _assert_kw(portal, ASSERTION_BREAKS[case])
    web = to_factor_page(portal, user)
    csrf = web.csrf("/login/factor")
    cred = auth.assert_(web.options(csrf, "factor"), origin, kw.pop("rp_id", RP_ID), **kw)
    assert_refused(web, web.post("/login/factor", {"csrf": csrf, "credential": json.dumps(cred)}), 401, case)

    # The passkey itself is fine: the same person signs in with an unbroken assertion.
    web, r = passkey_login(portal, auth)
    assert_signed_in(web, r)


def test_a_challenge_issued_to_another_browser_is_refused(portal):
    _, auth = enrolled(portal, prefix="bound")
    web = Web(portal)
    csrf = web.csrf("/login")
    cred = auth.assert_({"publicKey": {"challenge": other_browser_challenge(portal, auth), "rpId": RP_ID}}, portal.issuer, RP_ID)
    assert_refused(web, web.post("/login/passkey", {"csrf": csrf, "credential": json.dumps(cred)}), 401, "another browser's challenge")


def test_a_lower_signature_counter_is_refused_as_a_clone(portal):
    """The same check as the Chromium clone test, with softauthn forcing the counter."""
    user, auth = enrolled(portal, prefix="clone")
    web, r = passkey_login(portal, auth, sign_count=10)
    assert_signed_in(web, r)
    web, r = passkey_login(portal, auth, sign_count=7)
    assert_refused(web, r, 401, "lower counter (login)")
    web, r = passkey_factor(portal, user, auth, sign_count=3)
    assert_refused(web, r, 401, "lower counter (second factor)")
    web, r = passkey_login(portal, auth, sign_count=11)
    assert_signed_in(web, r)


def test_unknown_credentials_and_other_peoples_passkeys_are_refused(portal):
    owner, owner_auth = enrolled(portal, prefix="owner")
    victim, _ = enrolled(portal, prefix="victim")
    # A credential the portal never registered, claiming the owner's user handle.
    stranger = sa.SoftAuthn()
    stranger.add(rp_id=RP_ID, user_handle=owner_auth.credentials[0].user_handle)
    web, r = passkey_login(portal, stranger)
    assert_refused(web, r, 401, "unknown credential")
    # The owner's real passkey, offered as the victim's second factor (not in the victim's allow list).
    web = to_factor_page(portal, victim)
    csrf = web.csrf("/login/factor")
    options = web.options(csrf, "factor")
    cred = owner_auth.assert_(options, portal.issuer, RP_ID, credential_id=owner_auth.credentials[0].id)
    assert_refused(web, web.post("/login/factor", {"csrf": csrf, "credential": json.dumps(cred)}), 401,
                   "another person's passkey as a second factor")
    # The owner's real passkey with a user handle that is not the owner's.
    web = Web(portal)
    csrf = web.csrf("/login")
    cred = owner_auth.assert_(web.options(csrf, "login"), portal.issuer, RP_ID, user_handle=os.urandom(16))
    assert_refused(web, web.post("/login/passkey", {"csrf": csrf, "credential": json.dumps(cred)}), 401,
                   "a user handle that is not the credential's owner")
    web, r = passkey_login(portal, owner_auth)
    assert_signed_in(web, r)


def test_a_passkey_sign_in_needs_the_user_handle(portal):
    """Beyond the contract, from WebAuthn L3 §7.2 step 6: when nobody was named before the ceremony
    ("Sign in with a passkey"), response.userHandle must be present and name the credential's owner
    (a user handle is 1 to 64 bytes: an empty one is malformed). Chromium always sends it."""
    _, auth = enrolled(portal, prefix="handle")
    for handle in (None, b""):
        web, r = passkey_login(portal, auth, user_handle=handle)
        assert_refused(web, r, 401, f"passkey sign-in with userHandle {handle!r}")
    web, r = passkey_login(portal, auth)
    assert_signed_in(web, r)


def test_a_reused_assertion_is_refused(portal):
    """The exact form post (and the browser's cookies from before it) sent a second time."""
    user, auth = enrolled(portal, prefix="replay")
    web = Web(portal)
    csrf = web.csrf("/login")
    form = {"csrf": csrf, "credential": json.dumps(auth.assert_(web.options(csrf, "login"), portal.issuer, RP_ID))}
    cookies_before = web.s.cookies.copy()
    assert_signed_in(web, web.post("/login/passkey", form))
    again = Web(portal)
    again.s.cookies = cookies_before
    assert_refused(again, again.post("/login/passkey", form), 401, "reused challenge (login)")

    # The same as a second factor.
    web = to_factor_page(portal, user)
    csrf = web.csrf("/login/factor")
    form = {"csrf": csrf, "credential": json.dumps(auth.assert_(web.options(csrf, "factor"), portal.issuer, RP_ID))}
    cookies_before = web.s.cookies.copy()
    assert_signed_in(web, web.post("/login/factor", form))
    again = Web(portal)
    again.s.cookies = cookies_before
    r = again.post("/login/factor", form)
    assert 400 <= r.status_code < 500, r.status_code
    assert not again.signed_in()


REGISTRATION_BREAKS = {
    "wrong origin": dict(origin="http://evil.example:1234"),
    "wrong rp id hash": dict(rp_id="evil.example"),
    "wrong clientData type": dict(type_="webauthn.get"),
    "challenge never issued": dict(challenge=sa.b64url(os.urandom(32))),
    "no user presence": dict(up=False),
    "packed attestation with x5c (unsupported)": dict(fmt="packed-x5c"),
    "packed self attestation with a bad signature": dict(fmt="packed-self", tamper=True),
}


@pytest.mark.parametrize("case", list(REGISTRATION_BREAKS))
def test_a_broken_registration_is_refused_and_stores_nothing(portal, case):
    user = add_user(portal, "reg")
    web = signed_in_with_password(portal, user)
    kw = dict(REGISTRATION_BREAKS[case])
    origin, rp_id = kw.pop("origin", portal.issuer), kw.pop("rp_id", RP_ID)
    csrf = web.csrf("/account/factors")
    cred = sa.SoftAuthn().register(web.options(csrf, "register"), origin, rp_id, **kw)
    r = web.post("/account/factors/passkey", {"csrf": csrf, "name": "broken", "credential": json.dumps(cred)})
    assert r.status_code == 400, (case, r.status_code, r.headers.get("Location"), r.text[:500])
    assert "text/html" in r.headers.get("Content-Type", "")
    assert factor_rows(web) == [], case
    assert not mentions(audit(portal, "factor.enroll"), user), case
    # Nothing was stored: the password alone still signs this person in (no factor asked).
    signed_in_with_password(portal, user)
    # The session was fine: an unbroken registration works.
    r = register(web, sa.SoftAuthn())
    assert r.status_code == 303 and location(r) == "/account/factors", (r.status_code, r.text[:300])
    assert len(factor_rows(web)) == 1
