"""Passkeys (WebAuthn), issue 17: real headless Chromium with its virtual authenticator, and the
software authenticator in softauthn.py for everything a browser would never send.

Chromium (selenium 4, Debian's chromedriver; the virtual authenticator is CTAP2, transport
internal, resident keys, user verification): a person signed in with a password registers a
passkey on /account/factors; with cookies deleted, "Sign in with a passkey" on /login (no username
typed) signs them in; after a password, the passkey is the second factor on /login/factor; the
id_tokens carry the amr of RFC 8176. A clone of the Chromium credential (its private key read with
get_credentials, put into a new authenticator with a lower signature counter) is refused.
/account/factors, /account/factors/totp and /login/factor have no axe-core violation in light and
dark mode; PORTAL_UPDATE_SCREENSHOTS=1 copies factors.png, login-factor.png and totp-enroll.png to
docs/screenshots/.

softauthn (requests, like the page script: POST /webauthn/options, then the `credential` field):
ES256, EdDSA and RS256 with "none" and packed self attestation; BE → "swk"; every refusal the
contract names (wrong origin, wrong RP id hash, bad signature, lower counter, unknown credential,
reused challenge, challenge of another browser, packed x5c, no UP, no UV for a passkey alone) is a
4xx and changes nothing; ~300 malformed credentials at each of the four endpoints never give a 5xx
and never crash the portal.

Chromium's virtual authenticator, as found (Chromium 156): http://localhost is a secure context,
no --enable-features flag is needed; attestation "none", AAGUID 01020304050607080102030405060708,
ES256; flags UP|UV (BE and BS clear: "hwk"); the counter is 1 after registration and goes up by one
per assertion (so the clone test uses Chromium itself); userHandle comes back; clientDataJSON
sometimes carries an extra key "other_keys_can_be_added_here".
"""
import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shutil
import tempfile
import time
import types
import urllib.parse

import pytest
import requests

import softauthn as sa
from conftest import CALLBACK, Portal
from test_hardening import csrf_of
from test_ui_browser import REPO, UI, sign_in

PW = "a-person-password-for-passkeys"
RP_ID = "localhost"
# UI.check name -> docs/screenshots/<file>.png
README_SHOTS = {"factors": "factors", "login-factor": "login-factor", "totp-enroll": "totp-enroll"}
CRASH_MARKS = ("Fatal error", "fatalError", "Swift runtime failure", "Illegal instruction", "Segmentation fault",
               "Stack dump", "SIGSEGV", "SIGILL", "SIGTRAP", "precondition failed", "Assertion failed")


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def portal():
    p = Portal(issuer_host="localhost")
    yield p
    assert p.stop() == 0, "portal did not shut down cleanly on SIGTERM"
    assert_no_crash(p)
    shutil.rmtree(p.dir, ignore_errors=True)


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


# ---------------------------------------------------------------------------------------------
# Helpers: people, pages, tokens

_names = iter(range(1, 1_000_000))


def add_user(p, prefix="person", password=PW):
    name = f"{prefix}{next(_names)}"
    r = p.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    return name


def assert_no_crash(p):
    logs = p.logs()
    for mark in CRASH_MARKS:
        assert mark not in logs, f"the portal's log shows a crash ({mark}):\n{logs[-3000:]}"
    for line in logs.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert not str(entry.get("status", "")).startswith("5"), f"a 5xx answer: {line}"
            assert entry.get("level") != "critical", line


class Web:
    """A browser made of requests (cookies kept), on the issuer's origin like the page would be."""

    def __init__(self, p):
        self.p, self.base = p, p.issuer
        self.s = requests.Session()

    def get(self, path):
        return self.s.get(self.base + path, allow_redirects=False, timeout=15)

    def post(self, path, data):
        return self.s.post(self.base + path, data=data, allow_redirects=False, timeout=30)

    def csrf(self, path):
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.headers.get("Location"), r.text[:300])
        return csrf_of(r.text)

    def options(self, csrf, purpose):
        return sa.fetch_options(self.s, self.base, csrf, purpose)

    def signed_in(self):
        r = self.get("/")
        if r.status_code == 200:
            return True
        assert r.status_code in (302, 303) and location(r).startswith("/login"), (r.status_code, r.headers)
        return False


def location(r):
    """The Location header as a path (the portal may answer with the issuer's absolute URL)."""
    loc = urllib.parse.urlsplit(r.headers.get("Location", ""))
    return urllib.parse.urlunsplit(("", "", loc.path or "/", loc.query, loc.fragment)) if loc.scheme else r.headers.get("Location", "")


def password_step(p, user, password=PW, web=None):
    web = web or Web(p)
    r = web.post("/login", {"csrf": web.csrf("/login"), "username": user, "password": password})
    return web, r


def signed_in_with_password(p, user):
    """A person without a factor: the password alone signs in."""
    web, r = password_step(p, user)
    assert r.status_code == 303 and location(r) == "/", (r.status_code, r.headers.get("Location"), r.text[:300])
    return web


def factor_rows(web):
    """[(id, text)] of the rows on /account/factors."""
    r = web.get("/account/factors")
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    rows = re.findall(r'<tr[^>]*\bdata-factor-id="([^"]+)"[^>]*>(.*?)</tr>', r.text, re.S)
    return [(fid, " ".join(re.sub(r"<[^>]+>", " ", body).split())) for fid, body in rows]


def register(web, auth, name="security key", **kw):
    csrf = web.csrf("/account/factors")
    options = web.options(csrf, "register")
    cred = auth.register(options, web.p.issuer, RP_ID, **kw)
    return web.post("/account/factors/passkey", {"csrf": csrf, "name": name, "credential": json.dumps(cred)})


def enrolled(p, alg="ES256", prefix="pk", **kw):
    """A new person with a passkey made by a new SoftAuthn: (username, auth)."""
    user = add_user(p, prefix)
    auth = sa.SoftAuthn(alg)
    web = signed_in_with_password(p, user)
    r = register(web, auth, **kw)
    assert r.status_code == 303 and location(r) == "/account/factors", (r.status_code, r.headers.get("Location"), r.text[:500])
    rows = factor_rows(web)
    assert len(rows) == 1 and "Passkey" in rows[0][1], rows
    return user, auth


def passkey_login(p, auth, web=None, **assert_kw):
    """"Sign in with a passkey" (no username): (web, response)."""
    web = web or Web(p)
    csrf = web.csrf("/login")
    options = web.options(csrf, "login")
    cred = auth.assert_(options, p.issuer, RP_ID, **assert_kw)
    return web, web.post("/login/passkey", {"csrf": csrf, "credential": json.dumps(cred)})


def to_factor_page(p, user):
    web, r = password_step(p, user)
    assert r.status_code == 303 and location(r).startswith("/login/factor"), (r.status_code, r.headers.get("Location"))
    return web


def passkey_factor(p, user, auth, **assert_kw):
    """Password, then the passkey on /login/factor: (web, response)."""
    web = to_factor_page(p, user)
    csrf = web.csrf("/login/factor")
    options = web.options(csrf, "factor")
    cred = auth.assert_(options, p.issuer, RP_ID, **assert_kw)
    return web, web.post("/login/factor", {"csrf": csrf, "credential": json.dumps(cred)})


def assert_signed_in(web, r):
    assert r.status_code == 303 and not location(r).startswith("/login"), (r.status_code, r.headers.get("Location"), r.text[:500])
    assert web.signed_in()


def assert_refused(web, r, status, what):
    assert r.status_code == status, (what, r.status_code, r.headers.get("Location"), r.text[:500])
    assert "text/html" in r.headers.get("Content-Type", ""), (what, r.headers.get("Content-Type"))
    assert not web.signed_in(), f"{what}: refused, yet signed in"


def claims_of(jwt):
    return json.loads(sa.unb64url(jwt.split(".")[1]))


def id_token_claims(p, s):
    return claims_of(tokens_of(p, s)["id_token"])


def tokens_of(p, s):
    """Authorization code + PKCE for rp-public with the cookies of `s` (a requests.Session): the token response."""
    verifier = secrets.token_urlsafe(48)
    q = {"client_id": "rp-public", "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid profile",
         "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
         "code_challenge": sa.b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
    r = s.get(p.issuer + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False, timeout=15)
    assert r.status_code == 302 and r.headers["Location"].startswith(CALLBACK), (r.status_code, r.headers, r.text[:300])
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    r = requests.post(p.issuer + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                 "code_verifier": verifier, "client_id": "rp-public"}, timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def amr_of(web):
    return id_token_claims(web.p, web.s).get("amr")


def assert_two_factor_amr(amr, passkey_kind, primary="pwd"):
    """Password + passkey: primary first, then the passkey's hwk|swk with user, then mfa."""
    assert isinstance(amr, list) and amr[0] == primary and amr[-1] == "mfa", amr
    assert set(amr) == {primary, passkey_kind, "user", "mfa"} and len(amr) == 4, amr


def audit(p, kind):
    r = p.cli("audit", "--type", kind, "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def mentions(events, user):
    """Events naming `user` (as actor, subject or in the details)."""
    return [e for e in events if f'"{user}"' in json.dumps(e)]


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
# 0. The software authenticator itself


def test_softauthn_passes_its_self_checks():
    """CBOR vectors of RFC 8949, and each algorithm's registration and assertion checked by the
    independent verifier; every break-it knob really breaks what it should."""
    assert sa.selftest()


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


# ---------------------------------------------------------------------------------------------
# 3. softauthn: algorithms, attestation formats, backup flags


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
# 4. softauthn: what must be refused


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


# ---------------------------------------------------------------------------------------------
# 5. Malformed input at every passkey endpoint


def _b64(b):
    return sa.b64url(b)


def _with(cred, path, value):
    """`cred` as JSON with cred[path...] = value (`...` deletes it)."""
    c = json.loads(json.dumps(cred))
    node = c
    for k in path[:-1]:
        node = node[k]
    if value is ...:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return json.dumps(c)


def _with_ids(cred, value):
    """Both `id` and `rawId` (the portal may read either)."""
    return _with(json.loads(_with(cred, ["id"], value)), ["rawId"], value)


def _mutate_client_data(c, change):
    d = json.loads(sa.unb64url(c["response"]["clientDataJSON"]))
    return _with(c, ["response", "clientDataJSON"], _b64(json.dumps(change(d)).encode()))


def _att(c, change):
    a = sa.cbor_decode(sa.unb64url(c["response"]["attestationObject"]))
    return _with(c, ["response", "attestationObject"], _b64(sa.cbor_encode(change(a))))


def _truncate(c, key, r):
    raw = sa.unb64url(c["response"][key])
    return _with(c, ["response", key], _b64(raw[:int(r * (len(raw) - 1))]))


def _flip_somewhere(c, key, r):
    raw = bytearray(sa.unb64url(c["response"][key]))
    i = int(r * len(raw))
    raw[i] ^= 1 << (int(r * 1e6) % 8)
    return _with(c, ["response", key], _b64(bytes(raw)))


HUGE_HEADERS = ["5bffffffffffffffff", "7bffffffffffffffff", "9bffffffffffffffff", "bbffffffffffffffff",
                "5affffffff", "9affffffff", "baffffffff", "1bffffffffffffffff", "3bffffffffffffffff", "dbffffffffffffffff00"]
ODD_CBOR = ["81" * 500 + "00", "81" * 30000 + "00", "a101" * 500 + "00", "c0" * 1000 + "00", "9f" * 200, "bf" * 200,
            "5f41004100ff", "7f6161ff", "1c", "1f", "ff", "f8", "f820", "f93c00", "fb7ff8000000000000", "f7", "", "00",
            "a0", "80", "40", "60", "a3" + "6161" * 3]
CBOR_ATTACKS = [bytes.fromhex(h) for h in HUGE_HEADERS + ODD_CBOR]
BAD_COSE_KEYS = [{1: 99, 3: -7}, {1: 2, 3: -7, -1: 1, -2: b"\x01", -3: b"\x02"}, {1: 2, 3: -7, -1: 99, -2: bytes(32), -3: bytes(32)},
                 {1: 2, 3: -7, -1: 1, -2: bytes(32), -3: bytes(32)},   # not a point of the curve
                 {1: 2, 3: -7, -1: 1, -2: bytes(32)}, {1: 1, 3: -8, -1: 6, -2: bytes(31)}, {1: 3, 3: -257, -1: b"", -2: b"\x01\x00\x01"},
                 {1: 2, 3: -999999, -1: 1, -2: bytes(32), -3: bytes(32)}, {1: "EC2", 3: "ES256"}, {}, [], 7, "key", {1: [2]}]


def _auth_data_attacks(valid: bytes, registration: bool):
    """authenticatorData made malformed (all of them also break the signature over it)."""
    rp_hash, flags, count = valid[:32], valid[32], valid[33:37]
    out = [valid[:n] for n in (0, 1, 31, 32, 33, 36)]
    out += [rp_hash + bytes([flags | sa.AT]) + count,                                        # AT, no attested data
            rp_hash + bytes([flags | sa.AT]) + count + bytes(16) + b"\xff\xff" + b"x" * 10,   # id length past the end
            rp_hash + bytes([flags | sa.AT]) + count + bytes(16) + b"\x00\x00",                # empty id, no key
            rp_hash + bytes([flags | sa.ED]) + count + bytes.fromhex("81" * 500 + "00"),       # extensions nested deep
            rp_hash + bytes([flags | sa.ED]) + count + bytes.fromhex("bbffffffffffffffff"),
            rp_hash + bytes([flags | sa.ED]) + count,                                        # ED, nothing there
            valid + b"\x00" * 7,                                                             # trailing bytes
            bytes([rp_hash[0] ^ 1]) + valid[1:],                                             # rpIdHash flipped
            rp_hash + bytes([0]) + count + valid[37:],                                       # no flags at all
            valid[:37] + bytes(random.Random(len(valid)).randbytes(200))]
    if registration:
        head = valid[:53]
        n = int.from_bytes(valid[53:55], "big")
        cid = valid[55:55 + n]
        out += [head + len(cid).to_bytes(2, "big") + cid + sa.cbor_encode(k) for k in BAD_COSE_KEYS]
        out += [head + len(cid).to_bytes(2, "big") + cid + raw for raw in CBOR_ATTACKS[:12]]
    return out


ATTESTATION_SHAPES = [
    lambda a: 5, lambda a: [a["authData"]], lambda a: {"fmt": a["fmt"]}, lambda a: {"fmt": a["fmt"], "attStmt": a["attStmt"]},
    lambda a: {**a, "fmt": 7}, lambda a: {**a, "fmt": "tpm"}, lambda a: {**a, "fmt": "android-safetynet"},
    lambda a: {**a, "fmt": ""}, lambda a: {**a, "attStmt": []}, lambda a: {**a, "attStmt": 5}, lambda a: {**a, "authData": 37},
    lambda a: {**a, "authData": "text"}, lambda a: {**a, "authData": b""},
    lambda a: {**a, "attStmt": {"alg": -7, "sig": b""}}, lambda a: {**a, "attStmt": {"alg": -7}},
    lambda a: {**a, "attStmt": {"sig": a["attStmt"].get("sig", b"")}}, lambda a: {**a, "attStmt": {"alg": "ES256", "sig": 5}},
    lambda a: {**a, "attStmt": {"alg": -257, "sig": bytes(256)}}, lambda a: {**a, "attStmt": {"alg": -8, "sig": bytes(64)}},
    lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": []}}, lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": [bytes(300)]}},
    lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": [b"\x30\x82\xff\xff"]}}, lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": 5}},
    lambda a: {"fmt": "fido-u2f", "attStmt": {"sig": bytes(70), "x5c": [b"\x30\x82\xff\xff"]}, "authData": a["authData"]},
]


def mutations(endpoint: str, seed: int, count: int = 300):
    """`count` functions (valid credential dict) -> str (the `credential` form field), each breaking
    something an RP must check: endpoint "login" (/login/passkey), "factor" (/login/factor, /step-up)
    or "register" (/account/factors/passkey; the valid base is packed self attestation, so every
    byte of clientDataJSON and authData is under a signature)."""
    rng = random.Random(seed)
    registration = endpoint == "register"
    fields = ["clientDataJSON"] + (["attestationObject"] if registration else ["authenticatorData", "signature"])
    m = []
    add = m.append
    # The whole field: not JSON, JSON of the wrong shape, deep JSON, big.
    # (The portal reads at most 64 KiB of form: all but one stay below, so they reach the passkey code;
    # brackets and quotes take three bytes each once URL-encoded.)
    for raw in ["", " ", "null", "true", "0", "-1", "1e999", '"credential"', "[]", "{}", "{", "}", "[" * 18000,
                '{"a":' * 4000, "\x00\x01\x02", "A" * 50000, "A" * 200000, '{"id": }', "{'id': 'x'}", "\ufeff{}"]:
        add(lambda c, raw=raw: raw)
    add(lambda c: json.dumps([c]))
    add(lambda c: json.dumps(c) + json.dumps(c))
    add(lambda c: base64.b64encode(json.dumps(c).encode()).decode())
    # Missing members, and members of the wrong JSON type.
    add(lambda c: _with_ids(c, ...))
    add(lambda c: _with(c, ["response"], ...))
    for key in fields:
        add(lambda c, key=key: _with(c, ["response", key], ...))
    for bad in [None, 0, -1, 1.5, True, [], {}, [1, 2], {"a": 1}, "", "x" * 20000]:
        add(lambda c, bad=bad: _with_ids(c, bad))
        add(lambda c, bad=bad: _with(c, ["response"], bad))
        for key in fields:
            add(lambda c, key=key, bad=bad: _with(c, ["response", key], bad))
        if endpoint == "login" and bad not in (None, ""):   # missing: test_a_passkey_sign_in_needs_the_user_handle
            add(lambda c, bad=bad: _with(c, ["response", "userHandle"], bad))
    # Broken base64url in every binary member.
    for bad in ["!!!!", "====", "AAAA=", "A", "AB+/", "AA AA", "\u00e9\u00e9", "%00", "-_-_=", "AAAAAAAA" * 1000 + "*"]:
        add(lambda c, bad=bad: _with_ids(c, bad))
        for key in fields:
            add(lambda c, key=key, bad=bad: _with(c, ["response", key], bad))
    add(lambda c: _with_ids(c, _b64(os.urandom(32))))   # a credential nobody registered
    # Random bytes of many lengths.
    for key in fields:
        for n in (0, 1, 2, 16, 36, 37, 38, 64, 255, 1000, 40000):
            add(lambda c, key=key, n=n, r=rng.random(): _with(c, ["response", key], _b64(random.Random(r).randbytes(n))))
    # clientDataJSON: not UTF-8, not an object, members of the wrong type or missing.
    for cdj in [b"\xff\xfe\xfd", b"[]", b"null", b"{}", b'"webauthn.get"', b"{" * 10000, b'{"type":' * 3000,
                b"[" * 30000, b'{"type":1,"challenge":2,"origin":3}', b'{"type":"webauthn.get"}', b'{"type":"webauthn.create"}',
                b'{"challenge":"AAAA","origin":"x"}', b'{"type":"webauthn.get","challenge":[],"origin":{}}', b"\x00" * 64,
                b'{"type":"webauthn.get","challenge":"\\ud800","origin":"\\udfff"}']:
        add(lambda c, cdj=cdj: _with(c, ["response", "clientDataJSON"], _b64(cdj)))
    for change in [lambda d: {**d, "challenge": d["challenge"] + "AAAA"}, lambda d: {**d, "challenge": 12345},
                   lambda d: {**d, "origin": [d["origin"]]}, lambda d: {k: v for k, v in d.items() if k != "challenge"},
                   lambda d: {k: v for k, v in d.items() if k != "origin"}, lambda d: {k: v for k, v in d.items() if k != "type"},
                   lambda d: {**d, "type": None}, lambda d: {**d, "challenge": "!!not base64!!"}, lambda d: {**d, "challenge": ""},
                   lambda d: {**d, "origin": d["origin"] + "/"}, lambda d: {**d, "origin": d["origin"].upper()}]:
        add(lambda c, change=change: _mutate_client_data(c, change))
    # CBOR: huge length headers, deep nesting, indefinite lengths, truncation, wrong shapes.
    if registration:
        for raw in CBOR_ATTACKS:
            add(lambda c, raw=raw: _with(c, ["response", "attestationObject"], _b64(raw)))
            add(lambda c, raw=raw: _att(c, lambda a: {**a, "authData": sa.Raw(raw)}))
            add(lambda c, raw=raw: _att(c, lambda a: {**a, "attStmt": sa.Raw(raw)}))
        for _ in range(12):
            add(lambda c, r=rng.random(): _truncate(c, "attestationObject", r))
        for shape in ATTESTATION_SHAPES:
            add(lambda c, shape=shape: _att(c, shape))
        for i in range(43):
            add(lambda c, i=i: _att(c, lambda a: {**a, "authData": (lambda x: x[i % len(x)])(_auth_data_attacks(a["authData"], True))}))
    else:
        for raw in CBOR_ATTACKS:
            add(lambda c, raw=raw: _with(c, ["response", "authenticatorData"], _b64(raw)))
        for i in range(16):
            add(lambda c, i=i: _with(c, ["response", "authenticatorData"],
                                     _b64(_auth_data_attacks(sa.unb64url(c["response"]["authenticatorData"]), False)[i])))
        for _ in range(6):
            add(lambda c, r=rng.random(): _truncate(c, "authenticatorData", r))
        for sig in [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff\x02\x01\x01", bytes.fromhex("3006020100020100"), bytes(64), bytes(72),
                    b"\x30\x45\x02\x21" + b"\xff" * 66, b"\xff" * 512, b"\x30\x80" + bytes(70)]:
            add(lambda c, sig=sig: _with(c, ["response", "signature"], _b64(sig)))
        add(lambda c: _with(c, ["response", "signature"], _b64(sa.unb64url(c["response"]["signature"])[:-1])))
        add(lambda c: _with(c, ["response", "signature"], _b64(sa.unb64url(c["response"]["signature"]) + b"\x00")))
        if endpoint == "login":   # a user handle that is not the credential's owner
            for uh in [_b64(os.urandom(16)), _b64(os.urandom(64)), "x" * 5000]:
                add(lambda c, uh=uh: _with(c, ["response", "userHandle"], uh))
    # Bit flips anywhere in the binary members (all of them signed).
    while len(m) < count:
        add(lambda c, key=rng.choice(fields), r=rng.random(): _flip_somewhere(c, key, r))
    if len(m) > count:
        keep = sorted(random.Random(seed + 1).sample(range(len(m)), count))
        m = [m[i] for i in keep]
    return m


@pytest.fixture
def fuzz_portal():
    """A portal of its own (throttles out of the way, so every post reaches the passkey code)."""
    p = Portal(issuer_host="localhost")
    p.stop()
    with open(p.config) as f:
        config = f.read()
    config = config.replace("max_failures_per_user: 5", "max_failures_per_user: 1000").replace(
        "max_failures_per_address: 1000", "max_failures_per_address: 100000")
    with open(p.config, "w") as f:
        f.write(config)
    p.start()
    yield p
    if p.proc.poll() is None:
        p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)


def test_malformed_credentials_are_refused_at_every_endpoint_and_never_crash_the_portal(fuzz_portal):
    p = fuzz_portal
    holder, holder_auth = enrolled(p, prefix="fuzzholder")
    newcomer = add_user(p, "fuzznew")

    def signed_in_with_the_passkey():
        web, r = passkey_login(p, holder_auth)
        assert_signed_in(web, r)
        return web

    # path, the browser (made just before its turn: the second-factor step lasts 5 minutes), the page with
    # the form, the options' purpose, the mutation set, other form fields.
    endpoints = [
        ("/login/passkey", lambda: Web(p), "/login", "login", "login", {}),
        ("/login/factor", lambda: to_factor_page(p, holder), "/login/factor", "factor", "factor", {}),
        ("/step-up", signed_in_with_the_passkey, "/step-up?next=/account/factors", "step-up", "factor", {"next": "/account/factors"}),
        ("/account/factors/passkey", lambda: signed_in_with_password(p, newcomer), "/account/factors", "register", "register",
         {"name": "fuzz"}),
    ]
    bad, too_large, webs = [], {}, {}
    for n, (path, make_web, page, purpose, kind, extra) in enumerate(endpoints):
        web = webs[path] = make_web()
        csrf = web.csrf(page)
        for i, mutate in enumerate(mutations(kind, seed=17 + n)):
            opts = sa.options_response(web.s, web.base, csrf, purpose)
            assert opts.status_code < 500, (path, "options", opts.status_code)
            if opts.status_code == 200:
                options = opts.json()
            else:   # e.g. locked out: any challenge will do, the credential is broken anyway
                options = {"publicKey": {"challenge": sa.b64url(os.urandom(32)), "rpId": RP_ID,
                                         "rp": {"id": RP_ID}, "user": {"id": sa.b64url(b"x")}}}
            if kind == "register":
                valid = sa.SoftAuthn().register(options, p.issuer, RP_ID, fmt="packed-self", store=False, check_params=False)
            else:
                valid = holder_auth.assert_(options, p.issuer, RP_ID, credential_id=holder_auth.credentials[0].id)
            field = mutate(valid)
            data = {"csrf": csrf, "credential": field.encode("utf-8", "surrogatepass"), **extra}
            try:
                r = web.post(path, data)
            except requests.RequestException as e:
                bad.append((path, i, "no answer", repr(e)[:200]))
                assert p.proc.poll() is None, f"the portal exited at {path} mutation {i}:\n{p.logs()[-3000:]}"
                continue
            if not 400 <= r.status_code < 500:
                bad.append((path, i, r.status_code, field[:200]))
            too_large[path] = too_large.get(path, 0) + (r.status_code == 413)
    assert p.proc.poll() is None, "the portal exited:\n" + p.logs()[-3000:]
    assert requests.get(p.base + "/readyz", timeout=10).status_code == 200
    assert not bad, f"{len(bad)} answers that were not 4xx, e.g. {bad[:10]}"
    # The mutations are sized to reach the passkey code, not the body limit.
    assert all(n <= 10 for n in too_large.values()), too_large
    # Nothing was stored: the newcomer has no factor, the holder still exactly one.
    assert factor_rows(webs["/account/factors/passkey"]) == []
    assert len(factor_rows(webs["/step-up"])) == 1
    # And the portal still signs people in with passkeys.
    web, r = passkey_login(p, holder_auth)
    assert_signed_in(web, r)
    assert p.stop() == 0
    assert_no_crash(p)
