"""RFC 8628 device authorization grant against a real `portal serve`: a device asks, polls
(authorization_pending, slow_down with the interval enforced, access_denied, expired_token), a
person signed in in another browser approves or denies on /device, and the device gets tokens once."""
import re
import shutil
import time

import pytest
import requests

from conftest import CALLBACK, Portal
from test_hardening import csrf_of
from session_helpers import add_user, claims_of, login, refresh

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_UA = "kubectl-portal/0.1 (linux/amd64)"


@pytest.fixture(scope="module")
def portal():
    p = Portal(extra_yaml=f"""  - id: other-device-app
    name: Other device app
    public: true
    redirect_uris: ["{CALLBACK}"]
    grant_types: [authorization_code, refresh_token, "{DEVICE_GRANT}"]
tokens:
  device_code_lifetime: 12s
""")
    yield p
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0


def ask(p, client="kubernetes", **extra):
    return requests.post(p.base + "/device/code", data={"client_id": client, **extra}, headers={"User-Agent": DEVICE_UA})


def poll(p, device_code, client="kubernetes"):
    return requests.post(p.base + "/token", data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client},
                         headers={"User-Agent": DEVICE_UA})


def error(r):
    assert r.status_code == 400 and r.headers["Cache-Control"] == "no-store", (r.status_code, r.text)
    return r.json()["error"]


def decide(p, s, user_code, decision):
    page = s.get(p.base + "/device", params={"user_code": user_code})
    assert page.status_code == 200, page.status_code
    r = s.post(p.base + "/device/decide", data={"csrf": csrf_of(page.text), "user_code": user_code, "decision": decision},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/device"
    return s.get(p.base + "/device").text, page.text


def test_discovery_and_who_may_ask(portal):
    meta = requests.get(portal.base + "/.well-known/openid-configuration").json()
    assert meta["device_authorization_endpoint"] == portal.issuer + "/device/code"
    assert DEVICE_GRANT in meta["grant_types_supported"]
    r = ask(portal, client="rp-public")  # not allowed the grant
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client", r.text
    assert ask(portal, client="nobody").status_code == 401
    assert ask(portal, scope="openid admin").json()["error"] == "invalid_scope"
    assert requests.get(portal.base + "/device/code").status_code == 405


def test_a_device_signs_in_once_a_person_approves_in_another_browser(portal):
    add_user(portal, "dev-a")
    r = ask(portal)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", r.text
    d = r.json()
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", d["user_code"]), d["user_code"]
    assert len(d["device_code"]) == 43 and d["verification_uri"] == portal.issuer + "/device"
    assert d["verification_uri_complete"] == portal.issuer + "/device?user_code=" + d["user_code"]
    assert d["expires_in"] == 12 and d["interval"] == 5
    # Waiting; polling too fast is told to slow down, and the interval grows by 5 s.
    assert error(poll(portal, d["device_code"])) == "authorization_pending"
    r = poll(portal, d["device_code"])
    assert error(r) == "slow_down" and "10 seconds" in r.json()["error_description"]

    # A person, signed in elsewhere, opens the link: sign-in first, then the request, with who asked.
    browser = requests.Session()
    browser.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
    r = browser.get(portal.base + "/device", params={"user_code": d["user_code"].lower().replace("-", " ")}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=%2Fdevice")
    login(portal, "dev-a", s=browser)
    done, asked = decide(portal, browser, d["user_code"], "approve")
    assert "Approve only if you started this yourself" in asked and "Kubernetes (kubectl)" in asked
    assert "127.0.0.1" in asked and d["user_code"] in asked
    assert "Approved. Go back to your device" in done

    time.sleep(5.5)
    r = poll(portal, d["device_code"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", r.text
    t = r.json()
    claims = claims_of(t["id_token"])
    assert claims["aud"] == "kubernetes" and claims["preferred_username"] == "dev-a" and "groups" in claims
    # Once: the same device code again is refused, and the tokens refresh like any others.
    assert error(poll(portal, d["device_code"])) == "invalid_grant"
    assert refresh(portal, t["refresh_token"], client="kubernetes").status_code == 200
    # The person sees it among their devices, with where it asked from.
    devices = browser.get(portal.base + "/devices").text
    assert "a code approved at /device" in devices
    audit = portal.cli("audit", "--json", "--limit", "50").stdout
    for event in ("device.request", "device.approve", "token.issue"):
        assert f'"type":"{event}"' in audit.replace(" ", ""), event


def test_denial_expiry_and_bad_codes(portal):
    add_user(portal, "dev-b")
    browser = login(portal, "dev-b")
    d = ask(portal).json()
    done, _ = decide(portal, browser, d["user_code"], "deny")
    assert "Denied" in done
    assert error(poll(portal, d["device_code"])) == "access_denied"
    # Deciding twice: the second answer changes nothing.
    page = browser.get(portal.base + "/device")
    r = browser.post(portal.base + "/device/decide", data={"csrf": csrf_of(page.text), "user_code": d["user_code"], "decision": "approve"})
    assert "no longer waiting" in r.text
    assert error(poll(portal, d["device_code"])) in ("access_denied", "slow_down")

    # Nobody approves: expired_token after the lifetime (12 s here), and /device no longer knows the code.
    late = ask(portal).json()
    time.sleep(12.5)
    assert error(poll(portal, late["device_code"])) == "expired_token"
    r = browser.get(portal.base + "/device", params={"user_code": late["user_code"]})
    assert r.status_code == 404 and "unknown, already answered, or expired" in r.text

    # Garbage and another client's device code are invalid_grant.
    assert error(poll(portal, "x" * 43)) == "invalid_grant"
    other = ask(portal, client="other-device-app").json()
    assert error(poll(portal, other["device_code"], client="kubernetes")) == "invalid_grant"
    assert error(poll(portal, other["device_code"], client="other-device-app")) == "authorization_pending"
    # Without CSRF nothing is decided.
    r = browser.post(portal.base + "/device/decide", data={"user_code": other["user_code"], "decision": "approve"})
    assert r.status_code == 403
    time.sleep(5)
    assert error(poll(portal, other["device_code"], client="other-device-app")) == "authorization_pending"


def test_guessing_codes_is_throttled(portal):
    add_user(portal, "dev-c")
    browser = login(portal, "dev-c")
    statuses = []
    for _ in range(8):
        page = browser.get(portal.base + "/device")
        r = browser.post(portal.base + "/device", data={"csrf": csrf_of(page.text), "user_code": "BCDF-GHJK"})
        statuses.append(r.status_code)
    assert statuses[0] == 404 and statuses[-1] == 429, statuses
    # Even a real code is refused while locked.
    d = ask(portal).json()
    r = browser.get(portal.base + "/device", params={"user_code": d["user_code"]})
    assert r.status_code == 429 and "Too many wrong codes" in r.text
