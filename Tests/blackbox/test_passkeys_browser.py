"""Passkeys (WebAuthn), issue 17, in real headless Chromium with its virtual authenticator.
The software authenticator's tests are in test_passkeys_refusals.py and test_passkeys_fuzz.py.

Chromium (selenium 4, Debian's chromedriver; the virtual authenticator is CTAP2, transport
internal, resident keys, user verification): a person signed in with a password registers a
passkey on /account/factors; with cookies deleted, "Sign in with a passkey" on /login (no username
typed) signs them in; after a password, the passkey is the second factor on /login/factor; the
id_tokens carry the amr of RFC 8176. A clone of the Chromium credential (its private key read with
get_credentials, put into a new authenticator with a lower signature counter) is refused.
/account/factors, /account/factors/totp and /login/factor have no axe-core violation in light and
dark mode; PORTAL_UPDATE_SCREENSHOTS=1 copies factors.png, login-factor.png and totp-enroll.png to
docs/screenshots/.

Chromium's virtual authenticator, as found (Chromium 156): http://localhost is a secure context,
no --enable-features flag is needed; attestation "none", AAGUID 01020304050607080102030405060708,
ES256; flags UP|UV (BE and BS clear: "hwk"); the counter is 1 after registration and goes up by one
per assertion (so the clone test uses Chromium itself); userHandle comes back; clientDataJSON
sometimes carries an extra key "other_keys_can_be_added_here".
"""
import base64
import hashlib
import hmac
import os
import re
import shutil
import tempfile
import time
import types

import pytest
import requests

from conftest import Portal
from passkey_helpers import (PW, RP_ID, add_user, assert_two_factor_amr, audit, finish_portal, id_token_claims,
                             mentions)
from test_ui_browser import REPO, UI, sign_in

# UI.check name -> docs/screenshots/<file>.png
README_SHOTS = {"factors": "factors", "login-factor": "login-factor", "totp-enroll": "totp-enroll"}


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def portal():
    p = Portal(issuer_host="localhost")
    yield p
    finish_portal(p)


@pytest.fixture(scope="module")
def chromium(portal, tmp_path_factory):
    """One headless Chromium on the issuer's URLs (http://localhost:PORT: the RP id is `localhost`)
    with a virtual authenticator."""
    artifacts = tempfile.mkdtemp(prefix="portal-ui-passkeys-")
    ui = UI(types.SimpleNamespace(base=portal.issuer), str(tmp_path_factory.mktemp("chromium-passkeys")), artifacts)
    new_authenticator(ui)
    state = {}
    yield ui, state
    ui.quit()
    print(f"\nbrowser screenshots: {artifacts}")
    if os.environ.get("PORTAL_UPDATE_SCREENSHOTS") == "1":
        out = os.path.join(REPO, "docs", "screenshots")
        os.makedirs(out, exist_ok=True)
        for name, _, shot in ui.visited:
            if name in README_SHOTS:
                shutil.copy(shot, os.path.join(out, README_SHOTS[name] + ".png"))


def new_authenticator(ui):
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
    ui.driver.add_virtual_authenticator(VirtualAuthenticatorOptions(
        protocol="ctap2", transport="internal", has_resident_key=True, has_user_verification=True,
        is_user_verified=True, is_user_consenting=True))


def totp(secret, at=None, step=30, digits=6):
    """RFC 6238 (SHA-1, 30 s, 6 digits) for a base32 secret."""
    secret = "".join(secret.split()).upper()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, int((at or time.time()) // step).to_bytes(8, "big"), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[o:o + 4], 'big') & 0x7FFFFFFF) % 10 ** digits:0{digits}d}"


# ---------------------------------------------------------------------------------------------
# Helpers: Chromium


def webauthn_click(ui, selector):
    """Clicks a data-webauthn button: the page script fetches the options, asks the (virtual)
    authenticator and submits the form, so the document is replaced."""
    from selenium.common.exceptions import TimeoutException
    try:
        ui.click_and_wait(ui.css(selector))
    except TimeoutException:
        try:
            console = [entry["message"] for entry in ui.driver.get_log("browser")]
        except Exception:  # noqa: BLE001
            console = []
        pytest.fail(f"{selector}: the page did not move on. Page: {ui.css('main').text!r}; console: {console}")


def status_of_page(ui):
    """The HTTP status of the document shown (after redirects: the last answer's)."""
    return ui.driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")


def browser_session(ui):
    s = requests.Session()
    for c in ui.driver.get_cookies():
        s.cookies.set(c["name"], c["value"])
    return s


def browser_signed_in(ui, portal):
    r = browser_session(ui).get(portal.issuer + "/", allow_redirects=False, timeout=15)
    return r.status_code == 200


def axe_clean(ui, name):
    """No axe-core violation at all (any impact), in light and dark mode."""
    d = ui.driver
    d.execute_script(ui.axe)
    try:
        for scheme in ("light", "dark"):
            d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            found = d.execute_async_script("""
                const done = arguments[arguments.length - 1];
                axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))),
                  e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")
            assert not found, f"{name} ({scheme}): accessibility violations: {found}"
    finally:
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})


def heading_is(ui, text):
    assert ui.heading().replace("\u2019", "'") == text, ui.heading()


def fresh_password_sign_in(ui, user, password=PW):
    ui.driver.delete_all_cookies()
    ui.get("/login")
    sign_in(ui, user, password)


# ---------------------------------------------------------------------------------------------
# 1. Chromium: register, passkey alone, passkey as second factor


def test_chromium_registers_a_passkey_that_signs_in_alone_and_as_a_second_factor(portal, chromium):
    ui, state = chromium
    user = add_user(portal, "pia")
    fresh_password_sign_in(ui, user)
    assert ui.path() == "/", (ui.path(), ui.css("main").text)

    # Register on /account/factors: a name, then the button (the page script does the rest).
    ui.get("/account/factors")
    assert not ui.all("tr[data-factor-id]")
    assert ui.css("#passkey-register").get_attribute("data-webauthn") == "register"
    ui.fill({"form[action='/account/factors/passkey'] input[name=name]": "Pia's laptop"})
    webauthn_click(ui, "#passkey-register")
    assert ui.path() == "/account/factors", (ui.path(), status_of_page(ui), ui.css("main").text)
    rows = ui.all("tr[data-factor-id]")
    assert len(rows) == 1, [r.text for r in rows]
    assert "Pia's laptop" in rows[0].text and "Passkey" in rows[0].text, rows[0].text
    creds = ui.driver.get_credentials()
    assert len(creds) == 1 and creds[0].is_resident_credential and creds[0].rp_id == RP_ID, [str(c) for c in creds]
    assert creds[0].user_handle, "a discoverable credential carries the user handle the portal chose"
    assert mentions(audit(portal, "factor.enroll"), user), "no factor.enroll audit event"

    # A fresh browser context: "Sign in with a passkey", no username typed.
    ui.driver.delete_all_cookies()
    ui.get("/login")
    assert ui.css("#passkey-signin").get_attribute("data-webauthn") == "login"
    assert ui.css("form[action='/login/passkey'] #passkey-signin")
    assert not ui.css("#username").get_attribute("value")
    webauthn_click(ui, "#passkey-signin")
    assert ui.path() == "/", (ui.path(), status_of_page(ui), ui.css("main").text)
    assert user in ui.css("main").text
    # Chromium's virtual authenticator leaves BE clear: device-bound, "hwk"; UV alone is multi-factor.
    assert id_token_claims(portal, browser_session(ui))["amr"] == ["hwk", "user", "mfa"]

    # The password, then the passkey as the second factor.
    fresh_password_sign_in(ui, user)
    assert ui.path() == "/login/factor", (ui.path(), ui.css("main").text)
    heading_is(ui, "Confirm it's you")
    assert ui.css("#passkey-factor").get_attribute("data-webauthn") == "factor"
    assert not browser_signed_in(ui, portal), "signed in before the second factor"
    webauthn_click(ui, "#passkey-factor")
    assert ui.path() == "/", (ui.path(), status_of_page(ui), ui.css("main").text)
    assert_two_factor_amr(id_token_claims(portal, browser_session(ui))["amr"], "hwk")
    assert mentions(audit(portal, "factor.use"), user), "no factor.use audit event"

    # The factors page says it was used.
    ui.get("/account/factors")
    row = ui.css("tr[data-factor-id]")
    assert "never" not in row.text.lower(), row.text
    state["user"] = user


def test_a_clone_of_the_chromium_passkey_with_a_lower_counter_is_refused(portal, chromium):
    """Chromium's virtual authenticator counts (1 at registration, +1 per assertion), so the clone is
    Chromium's own credential (private key and user handle read with get_credentials) in a new
    authenticator with a lower signature counter."""
    from selenium.webdriver.common.virtual_authenticator import Credential
    ui, state = chromium
    assert "user" in state, "needs the passkey of the previous test"
    user = state["user"]
    [cred] = ui.driver.get_credentials()
    assert cred.sign_count >= 3, f"Chromium's counter after a registration and two sign-ins: {cred.sign_count}"

    def replace_authenticator(sign_count):
        ui.driver.remove_virtual_authenticator()
        new_authenticator(ui)
        ui.driver.add_credential(Credential.create_resident_credential(cred._id, cred.rp_id, cred._user_handle,
                                                                      cred._private_key, sign_count))

    # The same credential, moved with its true counter: still signs in (the plumbing is sound).
    replace_authenticator(cred.sign_count)
    ui.driver.delete_all_cookies()
    ui.get("/login")
    webauthn_click(ui, "#passkey-signin")
    assert ui.path() == "/" and user in ui.css("main").text, (ui.path(), ui.css("main").text)
    [moved] = ui.driver.get_credentials()
    assert moved.sign_count == cred.sign_count + 1

    # A clone: the counter it reports (1) is lower than the one the portal stored.
    replace_authenticator(0)
    ui.driver.delete_all_cookies()
    ui.get("/login")
    webauthn_click(ui, "#passkey-signin")
    assert status_of_page(ui) == 401, (status_of_page(ui), ui.path(), ui.css("main").text)
    assert not browser_signed_in(ui, portal)
    ui.get("/")
    assert ui.path().startswith("/login"), ui.path()


# ---------------------------------------------------------------------------------------------
# 2. The pages, in Chromium: accessible, light and dark; the README's screenshots


def test_factor_pages_are_accessible_in_light_and_dark_mode(portal, chromium):
    ui, _ = chromium
    user = add_user(portal, "quinn")
    fresh_password_sign_in(ui, user)
    assert ui.path() == "/"

    # An authenticator app: the enrollment page (QR code and secret), then the code.
    ui.get("/account/factors")
    ui.click_and_wait(ui.css("main a[href='/account/factors/totp']"))
    assert ui.path() == "/account/factors/totp"
    assert ui.all("svg.qr")
    secret = ui.css("#totp-secret").text
    assert re.fullmatch(r"[A-Z2-7 =]{16,}", secret), secret
    # Headers checked on /account/factors: another GET of this page would start another enrollment.
    ui.check("totp-enroll", headers_url=portal.issuer + "/account/factors")
    axe_clean(ui, "/account/factors/totp")
    form = "form[action='/account/factors/totp'] "
    ui.fill({form + "input[name=code]": totp(secret), form + "input[name=name]": "Phone"})
    ui.submit(form + "button[type=submit]")
    assert ui.path() == "/account/factors", (ui.path(), ui.css("main").text)

    # And a passkey.
    ui.fill({"form[action='/account/factors/passkey'] input[name=name]": "Quinn's laptop"})
    webauthn_click(ui, "#passkey-register")
    assert ui.path() == "/account/factors", (ui.path(), ui.css("main").text)
    rows = [r.text for r in ui.all("tr[data-factor-id]")]
    assert len(rows) == 2 and any("Passkey" in r for r in rows) and any("Authenticator app" in r for r in rows), rows
    ui.check("factors")
    axe_clean(ui, "/account/factors")

    # The second step of a sign-in: code field and passkey button.
    fresh_password_sign_in(ui, user)
    assert ui.path() == "/login/factor", ui.path()
    assert ui.css("#code").get_attribute("autocomplete") == "one-time-code"
    assert ui.css("#passkey-factor")
    ui.check("login-factor")
    axe_clean(ui, "/login/factor")
    webauthn_click(ui, "#passkey-factor")
    assert ui.path() == "/", (ui.path(), ui.css("main").text)
