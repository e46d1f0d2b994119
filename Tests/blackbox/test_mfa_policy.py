"""Issue 17, who must have a second factor (mfa.require), against real `portal serve` processes:
a required group without grace (no kubectl setup, no kubeconfig, no /authorize code, no device
approval until a factor is enrolled), people outside the group, the grace period, admin step-up,
removing the last required factor, and the admin and CLI reset of another person's factors."""
import datetime
import re
import shutil
import time

import pytest
import requests

from conftest import RP_SECRET, Portal
from mfa_helpers import (PASSWORD, WRONG_CODE_TEXT, add_user, assert_dead, audit_about, authorize, claims_of, code_flow_with_login, csrf,
                         factor_id_named, factor_rows, factors_page, factors_post, form, fresh_totp, hidden_fields,
                         id_token_via_code_flow, login_password, login_with_totp, next_of, recovery_left, refresh, signed_in,
                         submit_factor_code, text_of, totp_enroll, wrong_totp)

CLUSTER = "test-cluster"
MFA_AMR = ["pwd", "otp", "mfa"]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
KUBERNETES = f"""kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:6443
      namespace: team-a
"""


def start(mfa):
    return Portal(extra_yaml=mfa + KUBERNETES)


def finish(p):
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly"


@pytest.fixture(scope="module")
def groups_portal():
    p = start("mfa:\n  require: groups\n  groups: [sre]\n  grace_period: 0s\n")
    yield p
    finish(p)


@pytest.fixture(scope="module")
def everyone_portal():
    p = start("mfa:\n  require: everyone\n  grace_period: 7d\n")
    yield p
    finish(p)


@pytest.fixture(scope="module")
def admins_portal():
    p = start("mfa:\n  require: admins\n  grace_period: 7d\n  step_up: 2s\n")
    yield p
    finish(p)


@pytest.fixture(scope="module")
def plain_portal():
    p = start("mfa:\n  require: none\n")
    yield p
    finish(p)


def signed_in_as(p, user, password=PASSWORD):
    s, r = login_password(p, user, password)
    # Someone who must hold a factor and holds none is sent to enroll; anyone else to the start page.
    assert r.status_code == 303 and r.headers["Location"] in ("/", "/account/factors"), (r.status_code, r.headers.get("Location"))
    return s


def kubernetes_page(p, s):
    r = s.get(p.base + "/kubernetes", allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    return r.text


def has_kubectl_setup(page):
    return 'action="/kubernetes/command"' in page or 'action="/kubernetes/kubeconfig"' in page


def download_kubeconfig(p, s):
    token = csrf(s.get(p.base + "/kubernetes").text)
    return s.post(p.base + "/kubernetes/kubeconfig", data={"csrf": token, "cluster": CLUSTER, "variant": "oidc"},
                  allow_redirects=False)


def kubectl_command(p, s):
    token = csrf(s.get(p.base + "/kubernetes").text)
    return s.post(p.base + "/kubernetes/command", data={"csrf": token, "cluster": CLUSTER}, allow_redirects=False)


def mfa_box(page):
    m = re.search(r'<(\w+)[^>]*\bid="mfa-required"[^>]*>', page)
    assert m, "no id=\"mfa-required\" box"
    end = page.find(f"</{m.group(1)}>", m.end())
    return page[m.start():end if end > 0 else len(page)]


def device_approve(p, s):
    """Asks for a device code, and approves it in browser `s`. Returns (statuses of the approval page and
    decision, the device's poll response)."""
    d = requests.post(p.base + "/device/code", data={"client_id": "kubernetes"}).json()
    page = s.get(p.base + "/device", params={"user_code": d["user_code"]}, allow_redirects=False)
    token = csrf(page.text) if 'name="csrf"' in page.text else csrf(s.get(p.base + "/").text)
    r = s.post(p.base + "/device/decide", data={"csrf": token, "user_code": d["user_code"], "decision": "approve"},
               allow_redirects=False)
    poll = requests.post(p.base + "/token", data={"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": "kubernetes"})
    return (page.status_code, r.status_code), poll


# ---------------------------------------------------------------------------------------------
# require: groups, no grace


def test_a_required_group_member_without_a_factor_gets_nothing_for_kubernetes_until_enrolling(groups_portal):
    p = groups_portal
    add_user(p, "sre-a", groups=["sre", "dev"])
    s = signed_in_as(p, "sre-a")  # no factor held: not asked, signed in

    page = kubernetes_page(p, s)
    box = mfa_box(page)
    assert 'href="/account/factors"' in box, box
    assert not has_kubectl_setup(page) and "refresh-token" not in page and "set-credentials" not in page
    r = download_kubeconfig(p, s)
    assert r.status_code == 403, r.status_code
    assert 'href="/account/factors"' in r.text and "kind: Config" not in r.text and "id-token" not in r.text
    r = kubectl_command(p, s)
    assert 400 <= r.status_code < 500 and "refresh-token" not in r.text, (r.status_code, r.headers.get("Location"))
    for client in ("rp-public", "rp-confidential"):
        r, _ = authorize(p, s, client=client)
        assert r.status_code == 403 and "Location" not in r.headers, (client, r.status_code, r.headers.get("Location"))
        assert 'href="/account/factors"' in r.text and "code=" not in r.text
    statuses, poll = device_approve(p, s)
    assert 403 in statuses, statuses
    assert poll.status_code == 400 and poll.json()["error"] in ("authorization_pending", "access_denied"), poll.text
    # An application credential is a token too: none is made for this sign-in.
    creds = s.get(p.base + "/credentials")
    r = s.post(p.base + "/credentials", data={"csrf": csrf(creds.text), "name": "ci", "lifetime": "30d"}, allow_redirects=False)
    assert r.status_code == 403 and 'href="/account/factors"' in r.text and "kpc_" not in r.text, (r.status_code, r.headers.get("Location"))

    # Enrolling a factor in this session: now everything works.
    totp_enroll(p, s)
    page = kubernetes_page(p, s)
    assert 'id="mfa-required"' not in page and has_kubectl_setup(page)
    r = download_kubeconfig(p, s)
    assert r.status_code == 200 and "kind: Config" in r.text, r.status_code
    c, _ = id_token_via_code_flow(p, s)
    assert "mfa" in c["amr"], c.get("amr")


def test_after_enrolling_the_next_sign_in_asks_for_the_factor_and_amr_says_mfa(groups_portal):
    p = groups_portal
    add_user(p, "sre-c", groups=["sre"])
    secret = totp_enroll(p, signed_in_as(p, "sre-c"))
    _, r = login_password(p, "sre-c")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor"
    s, r = login_with_totp(p, "sre-c", secret)
    assert r.headers["Location"] == "/"
    assert 'id="mfa-required"' not in kubernetes_page(p, s)
    c, tokens = id_token_via_code_flow(p, s, client="rp-confidential", secret=RP_SECRET)
    assert c["amr"] == MFA_AMR, c.get("amr")
    r = refresh(p, tokens["refresh_token"], client="rp-confidential", secret=RP_SECRET)
    assert r.status_code == 200 and claims_of(r.json()["id_token"])["amr"] == MFA_AMR


def test_a_person_outside_the_required_groups_is_not_asked(groups_portal):
    p = groups_portal
    add_user(p, "dev-b", groups=["dev"])
    s = signed_in_as(p, "dev-b")
    page = kubernetes_page(p, s)
    assert 'id="mfa-required"' not in page and has_kubectl_setup(page)
    assert download_kubeconfig(p, s).status_code == 200
    c, _ = id_token_via_code_flow(p, s)
    assert c["amr"] == ["pwd"], c.get("amr")


def test_removing_the_last_factor_while_the_policy_requires_one_is_409(groups_portal):
    p = groups_portal
    add_user(p, "sre-b", groups=["sre"])
    s = signed_in_as(p, "sre-b")
    one = totp_enroll(p, s, name="one")
    totp_enroll(p, s, name="two")
    s, _ = login_with_totp(p, "sre-b", one)  # a factor confirmed just now: no step-up
    page = factors_page(p, s)
    r = factors_post(p, s, "/account/factors/remove", id=factor_id_named(page, "two"))
    assert r.status_code == 303 and r.headers["Location"].startswith("/account/factors"), (r.status_code, r.headers.get("Location"))
    last = factor_id_named(factors_page(p, s), "one")
    r = factors_post(p, s, "/account/factors/remove", id=last)
    assert r.status_code == 409, (r.status_code, r.headers.get("Location"))
    assert list(factor_rows(factors_page(p, s))) == [last]
    assert login_password(p, "sre-b")[1].headers["Location"] == "/login/factor"


# ---------------------------------------------------------------------------------------------
# require: everyone, 7 days of grace


def test_within_the_grace_period_a_person_signs_in_sees_the_deadline_and_gets_tokens(everyone_portal):
    p = everyone_portal
    add_user(p, "graced")
    s = signed_in_as(p, "graced")
    home = s.get(p.base + "/").text
    today = datetime.datetime.now(datetime.timezone.utc).date()
    deadlines = {(today + datetime.timedelta(days=d)).isoformat() for d in (6, 7, 8)}
    assert any(d in home for d in deadlines), ("no deadline in the home page", deadlines, text_of(home)[:1500])
    assert 'href="/account/factors"' in home
    page = kubernetes_page(p, s)
    assert 'id="mfa-required"' not in page and has_kubectl_setup(page)
    assert download_kubeconfig(p, s).status_code == 200
    c, tokens = id_token_via_code_flow(p, s)
    assert c["amr"] == ["pwd"], c.get("amr")
    r = refresh(p, tokens["refresh_token"])
    assert r.status_code == 200 and claims_of(r.json()["id_token"])["amr"] == ["pwd"]
    # Signing in again does not move the deadline further away.
    home2 = signed_in_as(p, "graced").get(p.base + "/").text
    assert [d for d in sorted(deadlines) if d in home2] == [d for d in sorted(deadlines) if d in home]


# ---------------------------------------------------------------------------------------------
# require: admins, step_up 2s


def test_an_admin_holding_a_factor_confirms_it_again_for_admin_pages_after_step_up(admins_portal):
    p = admins_portal
    add_user(p, "boss", admin=True)
    add_user(p, "boss-nofactor", admin=True)
    s = signed_in_as(p, "boss")
    secret = totp_enroll(p, s)
    plain = signed_in_as(p, "boss-nofactor")
    time.sleep(3)  # > mfa.step_up

    r = s.get(p.base + "/admin/users", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/step-up?"), (r.status_code, r.headers.get("Location"))
    assert next_of(r.headers["Location"]) == "/admin/users"
    step_up = r.headers["Location"]
    # A POST to /admin is not carried out, and goes to step-up, back to the admin page the form returns to.
    token = csrf(s.get(p.base + "/").text)
    r = s.post(p.base + "/admin/users/signout", data={"csrf": token, "username": "boss-nofactor", "confirm": "yes"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/step-up?") and next_of(r.headers["Location"]).startswith("/admin"), \
        (r.status_code, r.headers.get("Location"))
    assert signed_in(p, plain)
    # The step-up page: a code form with the hidden next.
    page = s.get(p.base + step_up)
    assert page.status_code == 200
    f = form(page.text, "/step-up")
    assert hidden_fields(f).get("next") == "/admin/users" and "code" in {i.get("name") for i in f["inputs"]}
    # A wrong code: 401, and /admin still asks.
    r = submit_factor_code(p, s, wrong_totp(secret), path=step_up)
    assert r.status_code == 401 and WRONG_CODE_TEXT in text_of(r.text), r.status_code
    assert s.get(p.base + "/admin/users", allow_redirects=False).status_code == 303
    # The right code: on to /admin/users.
    r = submit_factor_code(p, s, fresh_totp(secret), path=step_up)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/users", (r.status_code, r.headers.get("Location"))
    assert s.get(p.base + "/admin/users", allow_redirects=False).status_code == 200
    # An admin without a factor is not asked.
    assert plain.get(p.base + "/admin/users", allow_redirects=False).status_code == 200


# ---------------------------------------------------------------------------------------------
# Reset of another person's factors


def test_an_admin_resets_a_persons_factors_after_confirming(plain_portal):
    p = plain_portal
    add_user(p, "root", admin=True)
    add_user(p, "lost")
    admin = signed_in_as(p, "root")
    first = signed_in_as(p, "lost")
    secret = totp_enroll(p, first)
    person, _ = login_with_totp(p, "lost", secret)
    r = factors_post(p, person, "/account/factors/recovery")  # a factor confirmed just now: no step-up
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    _, tokens = id_token_via_code_flow(p, person)

    page = admin.get(p.base + "/admin/users/lost")
    assert page.status_code == 200
    f = form(page.text, "/admin/users/factors/reset")
    who = hidden_fields(f)
    assert "lost" in (who.get("user"), who.get("username")), f
    # Not for the person themself (not an admin), not without CSRF.
    for s, data in ((person, {"csrf": csrf(person.get(p.base + "/").text)}), (admin, {})):
        r = s.post(p.base + "/admin/users/factors/reset", data={**data, "user": "lost", "username": "lost", "confirmed": "yes",
                                                                 "confirm": "yes"}, allow_redirects=False)
        assert r.status_code == 403, r.status_code
    # First a confirmation; nothing happens yet.
    asked = admin.post(p.base + "/admin/users/factors/reset", data={**who, "csrf": csrf(page.text)}, allow_redirects=False)
    assert asked.status_code == 200, asked.status_code
    confirm = form(asked.text, "/admin/users/factors/reset")
    yes = [i["name"] for i in confirm["inputs"] + confirm["buttons"] if i.get("value") == "yes" and i.get("name") in ("confirmed", "confirm")]
    assert yes, confirm
    assert signed_in(p, person)
    r = refresh(p, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    tokens = r.json()  # the live successor: below, only the reset can end it
    assert login_password(p, "lost")[1].headers["Location"] == "/login/factor"
    assert audit_about(p, "factor.reset", "lost") == []
    # Confirmed: factors and recovery codes gone, sessions and refresh families ended.
    data = {**hidden_fields(confirm), "csrf": csrf(asked.text), yes[0]: "yes"}
    assert "lost" in (data.get("user"), data.get("username")), data
    r = admin.post(p.base + "/admin/users/factors/reset", data=data, allow_redirects=False)
    assert r.status_code in (200, 303), r.status_code
    assert not signed_in(p, person)
    assert_dead(refresh(p, tokens["refresh_token"]))
    s = signed_in_as(p, "lost")  # no second step any more
    listing = factors_page(p, s)
    assert factor_rows(listing) == {} and recovery_left(listing) is None
    assert [e for e in audit_about(p, "factor.reset", "lost") if "root" in str(e)], "no factor.reset event by root"
    assert signed_in(p, admin)


def test_the_cli_resets_a_persons_factors(plain_portal):
    p = plain_portal
    add_user(p, "cli-lost")
    s = signed_in_as(p, "cli-lost")
    phone = totp_enroll(p, s, name="phone")
    totp_enroll(p, s, name="tablet")
    person, _ = login_with_totp(p, "cli-lost", phone)
    _, tokens = id_token_via_code_flow(p, person)
    r = p.cli("user", "reset-factors", "cli-lost")
    assert r.returncode == 0, r.stderr
    assert "Removed 2 factors of cli-lost; their sessions ended." in r.stdout, r.stdout
    assert not signed_in(p, person) and not signed_in(p, s)
    assert_dead(refresh(p, tokens["refresh_token"]))
    assert factor_rows(factors_page(p, signed_in_as(p, "cli-lost"))) == {}
    assert audit_about(p, "factor.reset", "cli-lost")
    # An unknown person: an error, nothing audited.
    r = p.cli("user", "reset-factors", "nobody-at-all")
    assert r.returncode != 0
    assert audit_about(p, "factor.reset", "nobody-at-all") == []


def test_acr_names_how_the_login_was_made_when_configured():
    p = start("mfa:\n  acr:\n    multi_factor: urn:example:mfa\n    single_factor: urn:example:pwd\n")
    try:
        add_user(p, "acr-a")
        c, _, _ = code_flow_with_login(p, "acr-a")
        assert c["acr"] == "urn:example:pwd" and c["amr"] == ["pwd"], c
        secret = totp_enroll(p, signed_in_as(p, "acr-a"))
        c, tokens, _ = code_flow_with_login(p, "acr-a", code=fresh_totp(secret))
        assert c["acr"] == "urn:example:mfa" and c["amr"] == MFA_AMR, c
        r = refresh(p, tokens["refresh_token"])
        assert r.status_code == 200 and claims_of(r.json()["id_token"])["acr"] == "urn:example:mfa", r.text
    finally:
        finish(p)


def test_turning_the_policy_on_ends_the_refreshes_of_sessions_begun_without_a_factor():
    p = start("")
    try:
        add_user(p, "before")
        c, tokens, _ = code_flow_with_login(p, "before")
        assert c["amr"] == ["pwd"] and "acr" not in c, c
        r = refresh(p, tokens["refresh_token"])
        assert r.status_code == 200, r.text
        rt = r.json()["refresh_token"]
        # The operator requires a second factor of everyone, no grace, and restarts the portal.
        p.stop()
        with open(p.config) as f:
            text = f.read()
        with open(p.config, "w") as f:
            f.write(text + "\nmfa:\n  require: everyone\n  grace_period: 0s\n")
        p.start()
        r = refresh(p, rt)
        assert_dead(r)
        assert "second factor" in r.json()["error_description"], r.text
        assert [e for e in audit_about(p, "token.refresh", "before") if e.get("success") is False
                and (e.get("details") or {}).get("reason") == "second factor required"], "the refusal is audited"
    finally:
        finish(p)
