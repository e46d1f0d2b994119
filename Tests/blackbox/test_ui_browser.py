"""The web UI end to end in real headless Chromium (selenium, Debian's chromedriver):

first-run setup link → administrator → a user created on /admin/users → sign out → sign in as
that user → /kubernetes → the bash line run with the real kubectl against a TLS stand-in API
server → the downloaded kubeconfig → an application credential through the TokenReview webhook
→ revoked by the admin → refused. Then every failure a person can hit gets a friendly page.

Every page visited is screenshotted into a temp artifacts dir (printed), checked with axe-core
(no serious or critical violations), for its security headers, and for CSP violations in the
browser console. With PORTAL_UPDATE_SCREENSHOTS=1 the main screenshots are copied to
docs/screenshots/ (what the README shows)."""
import glob
import html
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

from apiserver_standin import Authenticator, StandIn, WebhookAuthenticator
from conftest import Portal, free_port
from test_kubectl import Kubectl, pki  # noqa: F401 (fixture)

ADMIN, ADMIN_PW = "root-admin", "admin-password-for-the-browser"
USER, USER_PW = "dana", "dana-password-in-the-browser"
WEBHOOK_TOKEN = "wh-" + "b" * 40
CLUSTER = "staging"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
MAIN_SCREENSHOTS = {"login", "kubernetes", "kubernetes-command", "kubernetes-phone", "credentials-created", "admin-users",
                    "admin-confirm-revoke", "admin-apiserver"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,}$")


class EitherAuthenticator:
    """kube-apiserver with both --oidc-* flags and the TokenReview webhook: application credentials
    (kpc_…) go to the webhook, everything else is checked as an OIDC id_token."""

    def __init__(self, oidc, webhook):
        self.oidc, self.webhook = oidc, webhook

    def authenticate(self, token):
        return (self.webhook if token.startswith("kpc_") else self.oidc).authenticate(token)


def axe_source():
    try:
        import axe_core_python
    except ImportError:
        pytest.fail("axe-core-python is missing: pip install -r Tests/blackbox/requirements.txt")
    with open(os.path.join(os.path.dirname(axe_core_python.__file__), "axe.min.js")) as f:
        return f.read()


class UI:
    """One headless Chromium with the checks every page gets."""

    def __init__(self, portal, home, artifacts):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
            if not os.path.exists(binary):
                pytest.fail(f"{binary} is missing: scripts/test.sh installs chromium chromium-driver")
        self.portal, self.artifacts = portal, artifacts
        self.downloads = os.path.join(home, "downloads")
        os.makedirs(self.downloads)
        os.makedirs(os.path.join(home, "run"), mode=0o700)
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache",
                   XDG_DATA_HOME=f"{home}/data", XDG_RUNTIME_DIR=f"{home}/run")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={home}/profile",
                  "--window-size=1280,800", "--force-prefers-reduced-motion", "--hide-scrollbars"]:
            opts.add_argument(a)
        opts.add_experimental_option("prefs", {"download.default_directory": self.downloads, "download.prompt_for_download": False})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver", env=env), options=opts)
        self.driver.set_page_load_timeout(30)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": self.downloads})
        self.viewport(1280, 800)
        self.axe = axe_source()
        self.visited = []

    # -- driving

    def wait(self, timeout=15):
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout)

    def get(self, path):
        self.driver.get(self.portal.base + path if path.startswith("/") else path)
        self.loaded()

    def loaded(self):
        self.wait().until(lambda d: d.execute_script("return document.readyState") == "complete")

    def css(self, selector):
        return self.driver.find_element("css selector", selector)

    def all(self, selector):
        return self.driver.find_elements("css selector", selector)

    def fill(self, fields):
        for selector, value in fields.items():
            el = self.css(selector)
            el.clear()
            el.send_keys(value)

    def submit(self, button_selector):
        """Clicks a submit button and waits for the next document (the old <html> goes stale)."""
        self.click_and_wait(self.css(button_selector))

    def click_and_wait(self, element):
        """Clicks `element` and waits until the document it was in is replaced by the next one."""
        from selenium.common.exceptions import WebDriverException
        old = self.css("html")
        element.click()

        def gone(_):
            # Chromium reports a replaced document either as a stale element or as
            # "Node with given id does not belong to the document": both mean the page changed.
            try:
                old.is_enabled()
                return False
            except WebDriverException:
                return True

        self.wait().until(gone)
        self.loaded()

    def viewport(self, width, height, mobile=False):
        """Exact CSS viewport for screenshots (the window size would include no browser chrome in
        headless mode, but the emulation also makes the page see a phone)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def heading(self):
        return self.css("h1").text

    def path(self):
        return self.driver.current_url.removeprefix(self.portal.base)

    # -- checks every page gets

    def check(self, name, headers_url=None, expect_status=None):
        """Screenshot, axe-core, security headers, CSP violations, no stack trace."""
        d = self.driver
        shot = os.path.join(self.artifacts, f"{len(self.visited):02d}-{name}.png")
        d.save_screenshot(shot)
        self.visited.append((name, self.driver.current_url, shot))
        source = d.page_source
        for leak in ("Swift/", "Fatal error", "Traceback", ".swift:", "HummingbirdCore"):
            assert leak not in source, f"{name}: looks like a stack trace"
        # axe-core (injected through the driver, so CSP does not apply to it), in light and dark mode.
        d.execute_script(self.axe)
        for scheme in ("light", "dark"):
            d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            result = d.execute_async_script("""
                const done = arguments[arguments.length - 1];
                axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))),
                  e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")
            bad = [v for v in result if v["impact"] in ("serious", "critical")]
            assert not bad, f"{name} ({scheme}): accessibility violations: {bad}"
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        # CSP violations and other console errors.
        try:
            logs = d.get_log("browser")
        except Exception:  # noqa: BLE001 - not every driver offers logs
            logs = []
        csp = [l["message"] for l in logs if "Content Security Policy" in l["message"] or "Refused to" in l["message"]]
        assert not csp, f"{name}: CSP violations: {csp}"
        # Security headers, fetched with the browser's cookies.
        url = headers_url or d.current_url
        jar = {c["name"]: c["value"] for c in d.get_cookies()}
        r = requests.get(url, cookies=jar, allow_redirects=False, timeout=10)
        if expect_status:
            assert r.status_code == expect_status, (name, r.status_code)
        assert_security_headers(r, name)
        return shot

    def request_id_shown(self):
        footer = self.css("footer").text
        assert "Request ID" in footer, footer
        rid = self.css("footer code").text
        assert REQUEST_ID.match(rid), rid
        return rid

    def quit(self):
        self.driver.quit()


def assert_security_headers(r, name):
    h = r.headers
    csp = h.get("Content-Security-Policy", "")
    assert csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, (name, csp)
    assert "frame-ancestors 'none'" in csp, (name, csp)
    assert "default-src 'none'" in csp or "default-src 'self'" in csp, (name, csp)
    assert h.get("X-Content-Type-Options") == "nosniff", name
    assert h.get("Referrer-Policy") == "no-referrer", name
    assert h.get("Cross-Origin-Opener-Policy") == "same-origin", name
    assert h.get("X-Request-Id"), name


@pytest.fixture(scope="module")
def env(pki, tmp_path_factory):  # noqa: F811
    d = tmp_path_factory.mktemp("ui-webhook")
    (d / "token").write_text(WEBHOOK_TOKEN + "\n")
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    extra = f"""
webhook:
  bearer_token_file: {d / 'token'}
kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:{standin.port}
      certificate_authority_file: {pki / 'ca.crt'}
      namespace: team-a
"""
    portal = Portal(extra_yaml=extra)
    standin.auth = EitherAuthenticator(Authenticator(portal.issuer, "kubernetes"),
                                       WebhookAuthenticator(portal.base + "/webhook/tokenreview", WEBHOOK_TOKEN))
    artifacts = tempfile.mkdtemp(prefix="portal-ui-artifacts-")
    ui = UI(portal, str(tmp_path_factory.mktemp("chromium-home")), artifacts)
    state = {}
    yield portal, standin, ui, state
    ui.quit()
    print(f"\nbrowser screenshots: {artifacts}")
    if os.environ.get("PORTAL_UPDATE_SCREENSHOTS") == "1":
        out = os.path.join(REPO, "docs", "screenshots")
        os.makedirs(out, exist_ok=True)
        for name, _, shot in ui.visited:
            if name in MAIN_SCREENSHOTS:
                shutil.copy(shot, os.path.join(out, name + ".png"))
    standin.stop()
    assert portal.stop() == 0


def sign_in(ui, username, password):
    ui.fill({"#username": username, "#password": password})
    ui.submit("form[action='/login'] button[type=submit]")


def sign_out(ui, end=None):
    """Sign out from the top bar. When this browser started kubectl sessions the portal asks what
    to end ("this browser" is chosen unless `end` says "all")."""
    ui.submit("header form[action='/logout'] button[type=submit]")
    if ui.path() == "/logout":
        if end:
            ui.css(f"section.confirm input[name=end][value={end}]").click()
        ui.submit("section.confirm form[action='/logout'] button[type=submit]")
    assert ui.path().startswith("/login"), ui.path()


def test_first_run_admin_creates_a_user_who_sets_up_kubectl(env):
    portal, standin, ui, state = env
    # The one-time setup link printed at start.
    ui.get(portal.setup_url)
    assert ui.heading() == "Create the first administrator"
    ui.check("setup", headers_url=portal.base + "/setup?token=not-this-one")
    ui.fill({"#username": ADMIN, "#password": ADMIN_PW, "#confirm": ADMIN_PW})
    ui.submit("form[action='/setup'] button[type=submit]")
    assert ui.path() == "/" and ADMIN in ui.css("main").text
    ui.check("home-admin")

    # The admin creates a user on /admin/users.
    ui.get("/admin/users")
    form = "form[method=post][action='/admin/users'] "
    ui.fill({form + "input[name=username]": USER, form + "input[name=password]": USER_PW, form + "input[name=name]": "Dana Scully",
             form + "input[name=email]": "dana@example.org", form + "input[name=groups]": "dev, ops"})
    ui.submit(form + "button[type=submit]")
    assert f"Created user {USER}." in ui.css("[role=status]").text
    assert USER in ui.css("table").text
    ui.driver.execute_script("document.querySelector('form[action=\"/admin/users\"] button[type=submit]').scrollIntoView()")
    ui.check("admin-users")
    ui.get("/admin/apiserver")
    assert ui.heading() == "API server setup"
    assert f"--oidc-issuer-url={portal.issuer}" in ui.css("#flags").text
    ui.check("admin-apiserver")
    ui.get("/admin/credentials")
    ui.check("admin-credentials-empty")
    sign_out(ui)

    # The user signs in and opens the Kubernetes page.
    assert ui.heading() == "Sign in"
    ui.check("login")
    sign_in(ui, USER, USER_PW)
    assert ui.path() == "/" and "Dana Scully" in ui.heading()
    ui.get("/kubernetes")
    assert ui.heading() == "Set up kubectl"
    assert not ui.all("#bash-0"), "no token on the page until asked for"
    ui.check("kubernetes")
    ui.submit("form[action='/kubernetes/command'] button[type=submit]")
    assert ui.path().startswith("/shown/") and ui.heading() == f"kubectl for {CLUSTER}"
    line = ui.css("#bash-0").get_attribute("textContent")
    assert line.startswith("PORTAL_CA=") and "kubectl config set-credentials" in line
    ui.driver.execute_script("document.querySelectorAll('pre').forEach(e => e.style.filter = 'blur(4px)')")
    ui.check("kubernetes-command", headers_url=portal.base + "/kubernetes")
    ui.driver.refresh()
    ui.loaded()
    assert ui.heading() == "Already shown" and not ui.all("#bash-0")

    # The bash line, run with the real kubectl against the TLS stand-in.
    k = Kubectl("1.32")
    r = k.bash(line)
    assert r.returncode == 0, r.stderr
    before = len(standin.seen)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert len(standin.seen) > before and standin.seen[-1][0] == f"oidc:{USER}"
    assert sorted(standin.seen[-1][1]) == ["oidc:dev", "oidc:ops"]

    # The "Download kubeconfig" button: a real download by Chromium.
    ui.get("/kubernetes")
    for f in glob.glob(os.path.join(ui.downloads, "*")):
        os.remove(f)
    ui.css("form[action='/kubernetes/kubeconfig'] button[type=submit]").click()
    ui.wait(20).until(lambda _: [f for f in os.listdir(ui.downloads) if not f.endswith(".crdownload")])
    downloaded = [os.path.join(ui.downloads, f) for f in os.listdir(ui.downloads) if not f.endswith(".crdownload")][0]
    ui.wait(10).until(lambda _: os.path.getsize(downloaded) > 0 and yaml.safe_load(open(downloaded)) is not None)
    k2 = Kubectl("1.32", kubeconfig=downloaded)
    r = k2.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == f"oidc:{USER}"

    # Phone-sized (390x844, a mobile viewport): nothing wider than the screen except inside scrolling boxes.
    ui.viewport(390, 844, mobile=True)
    try:
        ui.get("/kubernetes")
        too_wide = ui.driver.execute_script("""
            const w = document.documentElement.clientWidth;
            return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1
              && !e.closest('pre, .table-wrap')).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));""")
        assert not too_wide, too_wide
        ui.check("kubernetes-phone")
    finally:
        ui.viewport(1280, 800)
    state["kubectl"] = k


def test_application_credential_works_through_the_webhook_until_the_admin_revokes_it(env):
    portal, standin, ui, state = env
    ui.get("/credentials")
    assert ui.heading() == "Application credentials"
    ui.check("credentials")
    ui.fill({"#c-name": "ci deploy", "#c-desc": "made in the browser"})
    ui.submit("form[action='/credentials'] button[type=submit]")
    assert ui.path().startswith("/shown/")
    token = ui.css("#new-token").get_attribute("textContent").strip()
    assert token.startswith("kpc_")
    kubeconfig = ui.css("#kc-0").get_attribute("textContent")
    assert yaml.safe_load(kubeconfig)["users"][0]["user"]["token"] == token
    # A throwaway portal's token, blurred anyway for the committed screenshot.
    ui.driver.execute_script("document.querySelectorAll('#new-token, pre[id^=kc-]').forEach(e => e.style.filter = 'blur(4px)')")
    ui.check("credentials-created", headers_url=portal.base + "/credentials")
    assert token not in requests.get(portal.base + "/credentials",
                                     cookies={c["name"]: c["value"] for c in ui.driver.get_cookies()}).text

    k = Kubectl("1.32")
    with open(k.kubeconfig, "w") as f:
        f.write(kubeconfig)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == f"oidc:{USER}"

    # The admin revokes it on /admin/credentials.
    sign_out(ui)
    sign_in(ui, ADMIN, ADMIN_PW)
    ui.get("/admin/credentials")
    cid = token.split("_")[1]
    row = next(tr for tr in ui.all("tbody tr") if cid in tr.text)
    ui.click_and_wait(row.find_element("css selector", "form[action='/admin/credentials/revoke'] button"))
    # Asked first, naming what stops working; nothing happened yet.
    assert ui.heading() == "Revoke “ci deploy”?"
    assert "dana's credential “ci deploy” stops authenticating within 2 minutes" in ui.css("main").text
    ui.check("admin-confirm-revoke", headers_url=portal.base + "/admin/credentials")
    assert k.run("get", "pods").returncode == 0
    ui.submit("form[action='/admin/credentials/revoke'] button[type=submit]")
    assert ui.path() == "/admin/credentials"
    assert "Credential revoked." in ui.css("[role=status]").text
    ui.check("admin-credentials-revoked", headers_url=portal.base + "/admin/credentials")
    r = k.run("get", "pods")
    assert r.returncode != 0 and "unauthorized" in (r.stdout + r.stderr).lower()
    sign_out(ui)


def test_every_failure_a_person_can_hit_is_a_friendly_page(env):
    portal, _, ui, _ = env
    ui.driver.delete_all_cookies()

    # Wrong password: the form again, with the reason and a request id.
    ui.get("/login")
    sign_in(ui, USER, "not-the-password")
    assert ui.heading() == "Sign in"
    assert ui.css("[role=alert]").text == "Incorrect username or password."
    assert ui.css("#username").get_attribute("value") == USER
    ui.request_id_shown()
    ui.check("error-wrong-password", headers_url=portal.base + "/login")

    # Locked out after too many failures (5 per user in the test config).
    for _ in range(5):
        ui.fill({"#password": "still-wrong"})
        ui.submit("form[action='/login'] button[type=submit]")
        if "Too many failed attempts" in ui.css("[role=alert]").text:
            break
    assert "Too many failed attempts. Try again in" in ui.css("[role=alert]").text
    ui.request_id_shown()
    ui.check("error-locked-out", headers_url=portal.base + "/login")

    # A used setup link, and one that never existed (what an expired one looks like).
    for url in (portal.setup_url, portal.base + "/setup?token=expired-or-made-up"):
        ui.get(url)
        assert ui.heading() == "This setup link cannot be used"
        assert "expired or has already been used" in ui.css("main").text
        ui.request_id_shown()
    ui.check("error-setup-link", expect_status=410)

    # An application that is not registered.
    ui.get("/authorize?response_type=code&client_id=no-such-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid"
           "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
    assert ui.heading() == "This sign-in link is not valid"
    assert "not set up correctly" in ui.css("main").text
    ui.request_id_shown()
    ui.check("error-unknown-client", expect_status=400)

    # A page that does not exist.
    ui.get("/no/such/page")
    assert ui.heading() == "Page not found"
    ui.request_id_shown()
    ui.check("error-not-found", expect_status=404)

    # A session that has ended (expired, or revoked by an admin): back to sign-in, with a word why.
    ui.get("/login")
    ui.driver.add_cookie({"name": "portal_session", "value": "x" * 43, "path": "/"})
    ui.get("/kubernetes")
    assert ui.path() == "/login?next=%2Fkubernetes"
    assert ui.heading() == "Sign in"
    assert "Your session has ended" in ui.css("[role=status]").text
    ui.check("error-session-ended")
    assert not any(c["name"] == "portal_session" for c in ui.driver.get_cookies())  # cleared


def test_directory_down_is_a_friendly_page(env):
    from test_ldap import ldap_yaml
    _, _, ui, _ = env
    down = Portal(extra_yaml=ldap_yaml([f"ldap://127.0.0.1:{free_port()}"]), env={"LDAP_BIND_PASSWORD": "unused"})
    try:
        ui.driver.delete_all_cookies()
        ui.get(down.base + "/login")
        sign_in(ui, "someone", "a-password-long-enough")
        assert ui.heading() == "Sign-in is unavailable"
        assert "Nothing was changed" in ui.css("main").text
        ui.request_id_shown()
        # The page is the answer to a POST; its headers are checked on the form it came from.
        ui.check("error-directory-down", headers_url=down.base + "/login")
    finally:
        assert down.stop() == 0
        shutil.rmtree(down.dir, ignore_errors=True)


def test_keyboard_focus_is_visible(env):
    portal, _, ui, _ = env
    ui.get("/login")
    from selenium.webdriver.common.keys import Keys
    ui.css("body").send_keys(Keys.TAB)
    focused = ui.driver.switch_to.active_element
    style = ui.driver.execute_script("const s = getComputedStyle(arguments[0]); return [s.outlineStyle, s.outlineWidth];", focused)
    assert style[0] != "none" and style[1] != "0px", style


def test_the_accessibility_check_would_see_a_violation(env):
    """Guards the guard: axe-core really runs and reports a serious problem when there is one."""
    _, _, ui, _ = env
    ui.get("/login")
    ui.driver.execute_script("document.querySelector('label[for=password]').remove()")
    with pytest.raises(AssertionError, match="label"):
        ui.check("axe-self-test")
