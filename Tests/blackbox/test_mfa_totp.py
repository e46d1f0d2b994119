"""Issue 17, authenticator apps (TOTP) and recovery codes, against a real `portal serve` driven with
`requests`; codes are computed independently with pyotp from the secret (and QR code) the page shows.

Enrollment (QR code, secret, wrong code refused), sign-in in two steps (303 /login/factor, no session
before the code, 400 without the step's cookie), the ±1 step window, replay, the login throttle,
amr in id_tokens across refresh and the device grant, recovery codes, step-up before removing,
rename/remove, and the audit events. No mfa policy: whoever holds a factor is asked for it.

Every test uses people of its own (the throttle counts per account), so the module portal is shared."""
import re
import shutil
import time
import urllib.parse

import pyotp
import pytest
import requests

from conftest import Portal
from mfa_helpers import (EXPIRED_TEXT, LOCKED_TEXT, PASSWORD, WRONG_CODE_TEXT, add_user, audit_about, authorize, claims_of, code_flow_with_login,
                         csrf, factor_id_named, factor_rows, factors_page, factors_post, form, fresh_totp, id_token_via_code_flow,
                         is_login_redirect, last_totp_step, login_password, login_with_code, login_with_totp, mark_totp_used, next_of,
                         post_totp_enrollment, recovery_codes, recovery_left, refresh, signed_in, submit_factor_code, text_of,
                         totp_code, totp_enroll, totp_enrollment_page, totp_step, wait_for_margin, wait_for_totp_step, wrong_totp)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MFA_AMR = ["pwd", "otp", "mfa"]


def signed_in_as(p, user, password=PASSWORD):
    s, r = login_password(p, user, password)
    assert r.status_code == 303 and r.headers["Location"] == "/", (r.status_code, r.headers.get("Location"))
    return s


@pytest.fixture(scope="module")
def env():
    p = Portal()
    # The person of the ±1-step test enrolls first, so that by the time that test runs (last) the
    # steps it sends are later than the one used at enrollment (a code is accepted once per step).
    skew = {"secret": None, "error": None}
    try:
        add_user(p, "skew")
        skew["secret"] = totp_enroll(p, signed_in_as(p, "skew"))
    except AssertionError as e:  # reported by the test that needs it
        skew["error"] = e
    yield p, skew
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly"


@pytest.fixture(scope="module")
def portal(env):
    return env[0]


# ---------------------------------------------------------------------------------------------
# Enrollment


def test_enrollment_page_shows_a_qr_code_of_the_otpauth_uri_and_the_secret(portal):
    from qr_decode import decode_svg

    # Signed out: the factors pages send to /login.
    for path in ("/account/factors", "/account/factors/totp"):
        assert is_login_redirect(requests.get(portal.base + path, allow_redirects=False)), path
    add_user(portal, "enr")
    s = signed_in_as(portal, "enr")
    listing = factors_page(portal, s)
    assert factor_rows(listing) == {}
    assert 'href="/account/factors/totp"' in listing

    page, secret, f = totp_enrollment_page(portal, s)
    assert re.fullmatch(r"[A-Z2-7]{16,}=*", secret), secret
    svg = re.search(r'<svg\b[^>]*\bclass="qr[" ].*?</svg>', page.text, re.S)
    assert svg, "no inline <svg class=\"qr\"> on the enrollment page"
    uri = decode_svg(svg.group(0))
    assert uri.startswith("otpauth://totp/"), uri
    parsed = urllib.parse.urlparse(uri)
    label = urllib.parse.unquote(parsed.path.lstrip("/"))
    params = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
    issuer = urllib.parse.urlparse(portal.issuer)
    hosts = {issuer.hostname, issuer.netloc}
    assert params["secret"].upper().rstrip("=") == secret.rstrip("="), (params, secret)
    assert params["issuer"] in hosts, params
    assert label in {f"{h}:enr" for h in hosts}, label
    # What an authenticator app makes of the QR code is what the secret in text gives.
    app = pyotp.parse_uri(uri)
    assert app.at(time.time()) == pyotp.TOTP(secret).at(time.time())
    # The form: the enrollment it confirms, a code and a name.
    names = {i.get("name") for i in f["inputs"]}
    assert {"enrollment", "code", "name", "csrf"} <= names, names
    assert [i for i in f["inputs"] if i.get("name") == "enrollment"][0].get("value")
    # Each visit starts a new enrollment with a new secret; none of them is a factor yet.
    _, again, _ = totp_enrollment_page(portal, s)
    assert again != secret
    assert factor_rows(factors_page(portal, s)) == {}
    assert login_password(portal, "enr")[1].headers["Location"] == "/"


def test_a_wrong_code_at_enrollment_is_refused_and_nothing_becomes_a_factor(portal):
    add_user(portal, "enr2")
    add_user(portal, "enr2-other")
    s = signed_in_as(portal, "enr2")
    page, secret, _ = totp_enrollment_page(portal, s)
    for bad in (wrong_totp(secret), "abcdef", "1234567"):
        r = post_totp_enrollment(portal, s, page, bad)
        assert r.status_code == 400, (bad, r.status_code)
        if bad.isdigit() and len(bad) == 6:
            assert WRONG_CODE_TEXT in text_of(r.text), bad
    # Without the CSRF token: refused, whatever the code.
    f = form(page.text, "/account/factors/totp")
    enrollment = [i for i in f["inputs"] if i.get("name") == "enrollment"][0]["value"]
    r = s.post(portal.base + "/account/factors/totp", data={"enrollment": enrollment, "code": totp_code(secret, totp_step()),
                                                              "name": "phone"}, allow_redirects=False)
    assert r.status_code == 403, r.status_code
    # Another person cannot confirm this enrollment, even with the right code.
    other = signed_in_as(portal, "enr2-other")
    token = csrf(other.get(portal.base + "/account/factors").text)
    r = other.post(portal.base + "/account/factors/totp", data={"csrf": token, "enrollment": enrollment,
                                                                  "code": totp_code(secret, totp_step()), "name": "stolen"},
                   allow_redirects=False)
    assert 400 <= r.status_code < 500, r.status_code
    assert factor_rows(factors_page(portal, other)) == {}
    assert login_password(portal, "enr2-other")[1].headers["Location"] == "/"
    # Nothing became a factor: no row, a password alone still signs in, nothing audited.
    assert factor_rows(factors_page(portal, s)) == {}
    _, r = login_password(portal, "enr2")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    assert [e for e in audit_about(portal, "factor.enroll", "enr2") if e.get("success") is not False] == []
    # The enrollment was kept: the right code now confirms it.
    r = post_totp_enrollment(portal, s, page, fresh_totp(secret), name="phone")
    assert r.status_code == 303 and r.headers["Location"] == "/account/factors", (r.status_code, text_of(r.text)[:300])
    rows = factor_rows(factors_page(portal, s))
    assert len(rows) == 1
    row = text_of(next(iter(rows.values())))
    assert "phone" in row and "Authenticator app" in row, row
    assert [e for e in audit_about(portal, "factor.enroll", "enr2") if "enr2-other" not in str(e) and e.get("success") is not False], \
        "no factor.enroll event"
    _, r = login_password(portal, "enr2")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor"


# ---------------------------------------------------------------------------------------------
# Sign-in in two steps


def test_password_then_code_signs_in_and_a_replayed_code_does_not(portal):
    add_user(portal, "two")
    secret = totp_enroll(portal, signed_in_as(portal, "two"))

    s, r = login_password(portal, "two")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor"
    # Nothing works before the second step: no portal session, no code for an application.
    assert not signed_in(portal, s)
    assert is_login_redirect(s.get(portal.base + "/account/factors", allow_redirects=False))
    assert is_login_redirect(s.get(portal.base + "/kubernetes", allow_redirects=False))
    r, _ = authorize(portal, s)
    assert r.status_code in (302, 303) and r.headers["Location"].startswith("/login"), (r.status_code, r.headers.get("Location"))
    page = s.get(portal.base + "/login/factor")
    assert page.status_code == 200 and "Confirm it" in text_of(page.text)
    f = form(page.text, "/login/factor")
    code_input = [i for i in f["inputs"] if i.get("name") == "code"]
    assert code_input and code_input[0].get("id") == "code" and code_input[0].get("autocomplete") == "one-time-code", code_input
    assert 'id="passkey-factor"' not in page.text  # no passkey: no passkey button

    # A code computed by pyotp (spaces allowed) signs in.
    code = fresh_totp(secret)
    r = submit_factor_code(portal, s, code[:3] + " " + code[3:])
    assert r.status_code == 303 and r.headers["Location"] == "/", (r.status_code, text_of(r.text)[:300])
    assert signed_in(portal, s)
    row = text_of(next(iter(factor_rows(factors_page(portal, s)).values())))
    assert "never" not in row.lower(), row  # last used: now
    assert audit_about(portal, "factor.use", "two"), "no factor.use event"

    # The same code again, in a fresh sign-in within its window: refused, no session.
    s2, _, r = login_with_code(portal, "two", code)
    assert r.status_code == 401 and WRONG_CODE_TEXT in text_of(r.text), r.status_code
    assert not signed_in(portal, s2)
    assert audit_about(portal, "factor.failure", "two"), "no factor.failure event"


def test_the_factor_step_needs_its_cookie_and_goes_where_login_would_have_gone(portal):
    add_user(portal, "nock")
    secret = totp_enroll(portal, signed_in_as(portal, "nock"))
    # A right code without the password step (no signed cookie): 400, nothing signed in.
    s = requests.Session()
    token = csrf(s.get(portal.base + "/login").text)
    r = s.post(portal.base + "/login/factor", data={"csrf": token, "code": totp_code(secret, totp_step())}, allow_redirects=False)
    assert r.status_code == 400 and EXPIRED_TEXT in text_of(r.text), (r.status_code, text_of(r.text)[:300])
    assert not signed_in(portal, s)
    # With the password step, the code sends on to `next`.
    s, r = login_password(portal, "nock", next="/account/factors")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor"
    r = submit_factor_code(portal, s, fresh_totp(secret))
    assert r.status_code == 303 and r.headers["Location"] == "/account/factors", (r.status_code, r.headers.get("Location"))
    assert signed_in(portal, s)


def test_wrong_codes_count_in_the_login_throttle(portal):
    add_user(portal, "thr")
    secret = totp_enroll(portal, signed_in_as(portal, "thr"))
    s, r = login_password(portal, "thr")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor"
    statuses = []
    for _ in range(5):
        r = submit_factor_code(portal, s, wrong_totp(secret))
        statuses.append(r.status_code)
        if r.status_code == 401:
            assert WRONG_CODE_TEXT in text_of(r.text)
    # login.max_failures_per_user is 5 (conftest).
    assert statuses[:4] == [401] * 4 and statuses[4] in (401, 429), statuses
    # Now even the right code (a step never used) is refused.
    r = submit_factor_code(portal, s, fresh_totp(secret))
    assert r.status_code == 429 and LOCKED_TEXT in text_of(r.text), (r.status_code, text_of(r.text)[:300])
    assert not signed_in(portal, s)
    assert len(audit_about(portal, "factor.failure", "thr")) >= 4


def test_amr_names_password_and_code_and_survives_refresh_and_the_device_grant(portal):
    add_user(portal, "amr")
    add_user(portal, "amr-pwd")
    secret = totp_enroll(portal, signed_in_as(portal, "amr"))
    # Through /authorize → /login → /login/factor → the client.
    c, tokens, s = code_flow_with_login(portal, "amr", code=fresh_totp(secret))
    assert c["amr"] == MFA_AMR, c.get("amr")
    rt = tokens["refresh_token"]
    for _ in range(2):
        r = refresh(portal, rt)
        assert r.status_code == 200, r.text
        c2 = claims_of(r.json()["id_token"])
        assert c2["amr"] == MFA_AMR and c2["sub"] == c["sub"], c2
        rt = r.json()["refresh_token"]
    # Another client in the same browser session: the session's amr.
    c3, _ = id_token_via_code_flow(portal, s)
    assert c3["amr"] == MFA_AMR
    # The device grant, approved in that browser: same amr.
    d = requests.post(portal.base + "/device/code", data={"client_id": "kubernetes"}).json()
    page = s.get(portal.base + "/device", params={"user_code": d["user_code"]})
    assert page.status_code == 200
    r = s.post(portal.base + "/device/decide", data={"csrf": csrf(page.text), "user_code": d["user_code"], "decision": "approve"},
               allow_redirects=False)
    assert r.status_code == 303
    r = requests.post(portal.base + "/token", data={"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": "kubernetes"})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["id_token"])["amr"] == MFA_AMR
    # A password alone: ["pwd"], before and after refresh.
    c, tokens, _ = code_flow_with_login(portal, "amr-pwd")
    assert c["amr"] == ["pwd"], c.get("amr")
    r = refresh(portal, tokens["refresh_token"])
    assert r.status_code == 200 and claims_of(r.json()["id_token"])["amr"] == ["pwd"]


# ---------------------------------------------------------------------------------------------
# Recovery codes


def test_recovery_codes_work_once_each_and_a_new_set_voids_the_old(portal):
    add_user(portal, "rec")
    secret = totp_enroll(portal, signed_in_as(portal, "rec"))
    s, _ = login_with_totp(portal, "rec", secret)  # a factor confirmed just now: generating needs no step-up
    assert recovery_left(factors_page(portal, s)) is None
    r = factors_post(portal, s, "/account/factors/recovery")
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    assert "no-store" in r.headers.get("Cache-Control", "")
    codes = recovery_codes(r.text)
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes), codes  # 80 bits each
    assert recovery_left(factors_page(portal, s)) == 10
    assert audit_about(portal, "factor.recovery_generate", "rec")

    spellings = [lambda c: c, lambda c: c.upper(), lambda c: c.replace("-", " "), lambda c: c.replace("-", ""),
                 lambda c: " " + c[:3] + " " + c[3:].upper() + " "]
    for i, code in enumerate(codes[:9]):
        s, _, r = login_with_code(portal, "rec", spellings[i % len(spellings)](code))
        assert r.status_code == 303 and r.headers["Location"] == "/", (i, r.status_code, text_of(r.text)[:300])
        c, _ = id_token_via_code_flow(portal, s)
        assert c["amr"] == MFA_AMR, (i, c.get("amr"))
        if i == 0:
            # Used once: never again.
            s0, _, r = login_with_code(portal, "rec", code)
            assert r.status_code == 401 and WRONG_CODE_TEXT in text_of(r.text)
            assert not signed_in(portal, s0)
            assert recovery_left(factors_page(portal, s)) == 9
    assert recovery_left(factors_page(portal, s)) == 1

    # A new set (the recovery code just used is a factor confirmed now): the old last code stops working.
    r = factors_post(portal, s, "/account/factors/recovery")
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    fresh = recovery_codes(r.text)
    assert len(set(fresh)) == 10 and not set(fresh) & set(codes)
    assert recovery_left(factors_page(portal, s)) == 10
    s_old, _, r = login_with_code(portal, "rec", codes[9])
    assert r.status_code == 401 and not signed_in(portal, s_old)
    s, _, r = login_with_code(portal, "rec", fresh[0])
    assert r.status_code == 303 and signed_in(portal, s)
    assert recovery_left(factors_page(portal, s)) == 9


# ---------------------------------------------------------------------------------------------
# Managing factors


def test_removing_and_generating_need_a_recent_factor_else_step_up(portal):
    add_user(portal, "stp")
    old = signed_in_as(portal, "stp")  # a browser session that never confirmed a factor
    secret = totp_enroll(portal, signed_in_as(portal, "stp"))
    listing = factors_page(portal, old)
    fid = next(iter(factor_rows(listing)))
    for action, fields in (("/account/factors/remove", {"id": fid}), ("/account/factors/recovery", {})):
        r = factors_post(portal, old, action, **fields)
        assert r.status_code == 303 and r.headers["Location"].startswith("/step-up?"), (action, r.status_code, r.headers.get("Location"))
        assert next_of(r.headers["Location"]) == "/account/factors"
    assert fid in factor_rows(factors_page(portal, old))  # nothing removed
    assert recovery_left(factors_page(portal, old)) is None  # nothing generated

    path = "/step-up?" + urllib.parse.urlencode({"next": "/account/factors"})
    page = old.get(portal.base + path)
    assert page.status_code == 200
    f = form(page.text, "/step-up")
    assert {i.get("name") for i in f["inputs"]} >= {"csrf", "code", "next"}
    r = submit_factor_code(portal, old, wrong_totp(secret), path=path)
    assert r.status_code == 401 and WRONG_CODE_TEXT in text_of(r.text), r.status_code
    r = factors_post(portal, old, "/account/factors/remove", id=fid)
    assert r.headers.get("Location", "").startswith("/step-up?"), "a wrong code passed step-up"
    r = submit_factor_code(portal, old, fresh_totp(secret), path=path)
    assert r.status_code == 303 and r.headers["Location"] == "/account/factors", (r.status_code, r.headers.get("Location"))
    r = factors_post(portal, old, "/account/factors/remove", id=fid)
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/factors"), (r.status_code, r.headers.get("Location"))
    assert factor_rows(factors_page(portal, old)) == {}
    assert audit_about(portal, "factor.remove", "stp")
    # No factor left: a password alone signs in again.
    assert login_password(portal, "stp")[1].headers["Location"] == "/"


def test_rename_and_remove_after_a_fresh_sign_in_and_never_another_persons_factor(portal):
    add_user(portal, "ren")
    add_user(portal, "ren-other")
    first = signed_in_as(portal, "ren")
    phone = totp_enroll(portal, first, name="phone")
    totp_enroll(portal, first, name="tablet")
    other = signed_in_as(portal, "ren-other")
    totp_enroll(portal, other, name="theirs")
    theirs = next(iter(factor_rows(factors_page(portal, other))))

    s, _ = login_with_totp(portal, "ren", phone)
    page = factors_page(portal, s)
    assert len(factor_rows(page)) == 2
    tablet = factor_id_named(page, "tablet")
    r = factors_post(portal, s, "/account/factors/rename", id=tablet, name="<b>work</b> tablet")
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/factors"), r.status_code
    page = factors_page(portal, s)
    assert "&lt;b&gt;work&lt;/b&gt; tablet" in factor_rows(page)[tablet] and "<b>work</b>" not in page
    assert audit_about(portal, "factor.rename", "ren")

    # Another person's factor: neither renamed nor removed (and no 5xx).
    for action, fields in (("/account/factors/rename", {"id": theirs, "name": "pwned"}), ("/account/factors/remove", {"id": theirs}),
                           ("/account/factors/remove", {"id": "no-such-factor"})):
        r = factors_post(portal, s, action, **fields)
        assert r.status_code < 500, (action, r.status_code)
    rows = factor_rows(factors_page(portal, other))
    assert list(rows) == [theirs] and "theirs" in text_of(rows[theirs]) and "pwned" not in rows[theirs]
    assert len(factor_rows(factors_page(portal, s))) == 2

    # Remove, just after signing in with a factor: no step-up.
    r = factors_post(portal, s, "/account/factors/remove", id=tablet)
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/factors"), (r.status_code, r.headers.get("Location"))
    rows = factor_rows(factors_page(portal, s))
    assert tablet not in rows and len(rows) == 1 and "phone" in text_of(next(iter(rows.values())))
    # The remaining factor is still asked for.
    assert login_password(portal, "ren")[1].headers["Location"] == "/login/factor"


# ---------------------------------------------------------------------------------------------
# The time window (runs last: its person enrolled when the module started)


def test_codes_one_step_off_are_accepted_and_two_steps_off_are_not(env):
    portal, skew = env
    if skew["error"]:
        raise skew["error"]
    secret = skew["secret"]
    # Every step sent below must be later than the one used at enrollment.
    wait_for_totp_step(last_totp_step(secret) + 3)

    def attempt(offset):
        wait_for_margin(4)
        step = totp_step() + offset
        s, _, r = login_with_code(portal, "skew", totp_code(secret, step))
        if r.status_code == 303:
            mark_totp_used(secret, step)
        return s, r

    for offset in (-2, 2):
        s, r = attempt(offset)
        assert r.status_code == 401 and WRONG_CODE_TEXT in text_of(r.text), (offset, r.status_code)
        assert not signed_in(portal, s)
    for offset in (-1, 1):
        s, r = attempt(offset)
        assert r.status_code == 303 and r.headers["Location"] == "/", (offset, r.status_code, text_of(r.text)[:300])
        assert signed_in(portal, s)
