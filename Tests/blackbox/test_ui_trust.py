"""The web UI a platform team trusts, in real headless Chromium (issue 20).

One portal, walked in order: before setup the sign-in page says setup is pending; setup welcomes
the first administrator with next steps; every destructive action asks first, names what stops
working, and changes nothing until confirmed; a reload after any change repeats nothing and
mints nothing; a secret is shown once; the last administrator cannot lock themselves out by any
spelling of their name; focus starts in Username; no page is wider than a phone; axe-core is
clean in light and dark on every page (UI.check)."""
import json
import re
import tempfile

import pytest

from conftest import Portal
from test_kubectl import pki  # noqa: F401 (fixture)
from test_ui_browser import UI, sign_in, sign_out

ADMIN, ADMIN_PW = "root-admin", "admin-password-for-trust"
DANA, DANA_PW = "dana", "dana-password-for-trust"
LONG = "a-very-long-username-that-goes-on-and-on-without-any-break-at-all"[:64]
CLUSTER = "staging"


@pytest.fixture(scope="module")
def env(pki, tmp_path_factory):  # noqa: F811
    portal = Portal(extra_yaml=f"""
kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:6443
      certificate_authority_file: {pki / 'ca.crt'}
""")
    ui = UI(portal, str(tmp_path_factory.mktemp("chromium-trust")), tempfile.mkdtemp(prefix="portal-ui-trust-"))
    yield portal, ui
    ui.quit()
    assert portal.stop() == 0


def events(portal, kind):
    r = portal.cli("audit", "--type", kind, "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def families(portal):
    r = portal.cli("session", "list")
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line.strip() and not line.startswith("No ")]


def reload(ui):
    ui.driver.refresh()
    ui.loaded()


def click_in_row(ui, text, selector):
    """Clicks `selector` in the table row that mentions `text`; waits for the next page."""
    row = next(tr for tr in ui.all("tbody tr") if text in tr.text)
    ui.click_and_wait(row.find_element("css selector", selector))


def person_action(ui, name, action):
    """Opens the person's own page (where the actions are) and presses one."""
    ui.get("/admin/users")
    click_in_row(ui, name, f"a[href='/admin/users/{name}']")
    assert ui.heading() == name
    ui.submit(f"form[action='/admin/users/{action}'] button[type=submit]")


def confirm(ui):
    ui.submit("main form input[name=confirm][value=yes] ~ .actions-row button[type=submit]")


def cancel(ui):
    ui.click_and_wait(ui.css("main .actions-row a.button"))


def focused_id(ui):
    return ui.driver.execute_script("return document.activeElement && document.activeElement.id")


def test_before_setup_the_sign_in_page_says_setup_is_pending(env):
    portal, ui = env
    ui.get("/")
    assert ui.path() == "/login"
    assert "Setup is pending" in ui.css("main").text and "setup link" in ui.css("main").text
    assert focused_id(ui) == "username"
    ui.check("login-setup-pending")


def test_setup_welcomes_the_first_administrator_with_next_steps(env):
    portal, ui = env
    ui.get(portal.setup_url)
    ui.fill({"#username": ADMIN, "#password": ADMIN_PW, "#confirm": ADMIN_PW})
    ui.submit("form[action='/setup'] button[type=submit]")
    assert ui.path() == "/"
    assert f"Welcome, {ADMIN}" in ui.css("[role=status]").text
    steps = ui.css("#steps-title").find_element("xpath", "..").text
    assert "Add people" in steps and "Point the API server here" in steps
    assert ui.css("a[href='/admin/apiserver']") and ui.css("a[href='/admin/users#add']")
    ui.check("home-welcome")
    reload(ui)  # the welcome is said once
    assert "Welcome" not in ui.css("main").text and "Next steps" in ui.css("main").text
    ui.get("/login")
    assert "Setup is pending" not in ui.css("main").text


def test_one_navigation_marks_the_current_page(env):
    _, ui = env
    for path, label in [("/", "Home"), ("/kubernetes", "kubectl"), ("/credentials", "Credentials"), ("/admin/users", "Admin"),
                        ("/admin/audit", "Admin")]:
        ui.get(path)
        current = ui.all("nav[aria-label=Main] [aria-current=page]")
        assert [c.text for c in current] == [label], (path, [c.text for c in current])
    main_nav = ui.css("nav[aria-label=Main]").text
    assert "API server setup" not in main_nav
    ui.get("/admin/apiserver")
    assert ui.css("nav[aria-label=Administration] [aria-current=page]").text == "API server setup"
    # The two credential lists have two names.
    assert "All credentials" in ui.css("nav[aria-label=Administration]").text


def test_destructive_admin_actions_ask_first_and_a_reload_repeats_nothing(env):
    portal, ui = env
    ui.get("/admin/users")
    form = "form[method=post][action='/admin/users'] "
    for name, pw in [(DANA, DANA_PW), ("erin", DANA_PW)]:
        ui.fill({form + "input[name=username]": name, form + "input[name=password]": pw, form + "input[name=groups]": "dev, ops"})
        ui.submit(form + "button[type=submit]")
        assert ui.path() == "/admin/users" and f"Created user {name}." in ui.css("[role=status]").text
    reload(ui)  # a reload after the POST is a GET: no second user, no error
    assert len(events(portal, "admin.user.add")) == 2 and "[role=alert]" not in ui.driver.page_source

    # Disable: asked first, nothing changes until confirmed; Cancel goes back.
    person_action(ui, "erin", "disable")
    assert ui.heading() == "Disable erin?"
    assert "erin is signed out of the portal everywhere" in ui.css("main").text
    ui.check("confirm-disable")
    assert not events(portal, "admin.user.disable")
    cancel(ui)
    assert ui.path() == "/admin/users/erin"
    person_action(ui, "erin", "disable")
    confirm(ui)
    assert ui.path() == "/admin/users/erin" and "Disabled erin" in ui.css("[role=status]").text
    assert "admin.user.disable" in ui.css("main").text  # the person's own audit trail
    reload(ui)
    assert len(events(portal, "admin.user.disable")) == 1

    # Delete: the same.
    person_action(ui, "erin", "delete")
    assert ui.heading() == "Delete erin?" and "cannot be undone" in ui.css("main").text
    assert "erin" in portal.cli("user", "list").stdout
    confirm(ui)
    assert ui.path() == "/admin/users"
    reload(ui)
    assert len(events(portal, "admin.user.delete")) == 1 and "erin" not in portal.cli("user", "list").stdout

    # A robot with a credential made on its own form (expiry and groups), shown once.
    ui.get("/admin/robots")
    form = "form[method=post][action='/admin/robots'] "
    ui.fill({form + "input[name=name]": "ci-deployer", form + "input[name=team]": "platform", form + "input[name=groups]": "deployers, dev"})
    ui.submit(form + "button[type=submit]")
    click_in_row(ui, "robot:ci-deployer", "a.button")
    assert ui.heading() == "New credential for robot:ci-deployer"
    assert "(until 20" in ui.css("#c-exp").text
    ui.fill({"#c-name": "pipeline"})
    ui.css("input[name=scope][value=some]").click()
    ui.css("input[name=group][value=deployers]").click()
    ui.check("admin-robot-credential")
    ui.submit("form[action='/admin/robots/credential'] button[type=submit]")
    assert ui.path().startswith("/shown/") and ui.css("#new-token").get_attribute("textContent").startswith("kpc_")
    assert "kubeconfig for staging" in ui.css("main").text
    reload(ui)
    assert ui.heading() == "Already shown" and not ui.all("#new-token")
    assert len(events(portal, "credential.create")) == 1

    # Disabling the robot names its credentials.
    ui.get("/admin/robots")
    click_in_row(ui, "robot:ci-deployer", "form[action='/admin/robots/disable'] button")
    assert "robot:ci-deployer's 1 credential stops authenticating within 2 minutes" in ui.css("main").text
    cancel(ui)
    assert not events(portal, "admin.robot.disable") and "active" in next(tr for tr in ui.all("tbody tr") if "ci-deployer" in tr.text).text
    # Revoking it from All credentials.
    ui.get("/admin/credentials")
    click_in_row(ui, "pipeline", "form[action='/admin/credentials/revoke'] button")
    assert ui.heading() == "Revoke “pipeline”?" and not events(portal, "credential.revoke")
    confirm(ui)
    reload(ui)
    assert len(events(portal, "credential.revoke")) == 1
    # Deleting the robot.
    ui.get("/admin/robots")
    click_in_row(ui, "robot:ci-deployer", "form[action='/admin/robots/delete'] button")
    assert ui.heading() == "Delete robot:ci-deployer?"
    confirm(ui)
    reload(ui)
    assert len(events(portal, "admin.robot.delete")) == 1
    assert "No robots yet" in ui.css("main").text and ui.css("main a[href='#add']")

    # Key rotation offers routine (chosen) and emergency.
    ui.get("/admin/keys")
    ui.submit("form[action='/admin/keys/rotate'] button[type=submit]")
    assert ui.heading() == "Rotate the signing key?" and not events(portal, "admin.keys.rotate")
    assert ui.css("input[name=kind][value=routine]").is_selected() and not ui.css("input[name=kind][value=emergency]").is_selected()
    ui.check("confirm-rotate-key")
    confirm(ui)
    assert ui.path() == "/admin/keys"
    reload(ui)
    rotations = events(portal, "admin.keys.rotate")
    assert len(rotations) == 1 and rotations[0]["details"]["kind"] == "routine"
    # And the emergency one, chosen on the same page.
    ui.submit("form[action='/admin/keys/rotate'] button[type=submit]")
    ui.css("input[name=kind][value=emergency]").click()
    confirm(ui)
    reload(ui)
    rotations = events(portal, "admin.keys.rotate")
    assert len(rotations) == 2 and rotations[0]["details"]["kind"] == "emergency"


def test_the_last_administrator_cannot_lock_themselves_out(env):
    portal, ui = env
    for action, verb in [("disable", "disable"), ("delete", "delete"), ("demote", "remove administration from")]:
        for spelling in [ADMIN, "ROOT-ADMIN", " Root-Admin "]:
            ui.get(f"/admin/users/{ADMIN}")
            # Another spelling of the same account, typed into the form.
            ui.driver.execute_script("""
                document.querySelector(`form[action='/admin/users/${arguments[0]}'] input[name=username]`).value = arguments[1];""",
                                     action, spelling)
            ui.submit(f"form[action='/admin/users/{action}'] button[type=submit]")
            assert f"You cannot {verb} yourself" in ui.css("[role=alert]").text, (action, spelling)
    ui.check("admin-self-lockout-refused")
    # Another administrator can be made and removed (asked first); nothing changes before the confirmation.
    def is_admin(name):
        return any(line.split("\t")[0] == name and "admin" in line.split("\t")[-1] for line in portal.cli("user", "list").stdout.splitlines())
    person_action(ui, DANA, "promote")
    assert ui.path() == f"/admin/users/{DANA}" and is_admin(DANA)
    person_action(ui, DANA, "demote")
    assert ui.heading() == f"Remove administration from {DANA}?" and is_admin(DANA)
    confirm(ui)
    reload(ui)
    assert not is_admin(DANA) and len(events(portal, "admin.user.demote")) == 1
    # The CLI refuses to leave no administrator either.
    r = portal.cli("user", "disable", ADMIN)
    assert r.returncode != 0 and "last active local administrator" in (r.stdout + r.stderr)
    assert "Sign in" not in ui.css("h1").text


def test_a_person_rotates_and_revokes_with_a_confirmation_and_nothing_repeats(env):
    portal, ui = env
    sign_out(ui)
    assert ui.path() == "/login" and "You have signed out." in ui.css("[role=status]").text
    assert focused_id(ui) == "username"
    ui.check("signed-out")
    sign_in(ui, DANA, "wrong-password-here")
    assert focused_id(ui) == "password"  # the name is filled in: straight to the password
    ui.fill({"#password": DANA_PW})
    ui.submit("form[action='/login'] button[type=submit]")

    # The kubectl page mints nothing however often it is seen.
    before = len(families(portal))
    for _ in range(3):
        ui.get("/kubernetes")
    assert len(families(portal)) == before
    ui.submit("form[action='/kubernetes/command'] button[type=submit]")
    assert len(families(portal)) == before + 1
    reload(ui)
    assert ui.heading() == "Already shown" and len(families(portal)) == before + 1

    # The kubelogin variant says how to install it and never sends people back for tokens.
    ui.get("/kubernetes?variant=exec")
    text = ui.css("main").text
    assert "kubectl krew install oidc-login" in text and "come back here and log in" not in text
    ui.check("kubernetes-kubelogin")

    # A credential: the expiry choice shows its date; "all my groups" reads forwards.
    ui.get("/credentials")
    assert "None yet" in ui.css("main").text and ui.css("main a[href='#create']")
    assert "(until 20" in ui.css("#c-exp option[selected]").text
    assert "All of your groups, now and later" in ui.css("fieldset").text
    ui.fill({"#c-name": "nightly"})
    ui.css("#c-exp").find_element("css selector", "option[value='86400']").click()
    ui.submit("form[action='/credentials'] button[type=submit]")
    first = ui.css("#new-token").get_attribute("textContent").strip()
    reload(ui)
    assert ui.heading() == "Already shown" and first not in ui.driver.page_source
    ui.get("/credentials")
    rows = ui.all("tbody tr")
    assert len(rows) == 1 and ("in 1 day" in rows[0].text or "in 23 hours" in rows[0].text), rows[0].text
    assert rows[0].find_elements("css selector", ".badge.warn"), "expires within a week: marked"
    ui.check("credentials-list")

    # Rotate: asked first with an overlap (1 hour by default); the result says until when.
    ui.submit("form[action='/credentials/rotate'] button[type=submit]")
    assert ui.heading() == "Rotate “nightly”?" and not events(portal, "credential.rotate")
    assert ui.css("input[name=overlap][value='3600']").is_selected()
    ui.check("confirm-rotate-credential")
    confirm(ui)
    assert re.search(r"The old secret works until \d{4}-\d\d-\d\d \d\d:\d\d UTC", ui.css("[role=status]").text)
    second = ui.css("#new-token").get_attribute("textContent").strip()
    assert second != first
    reload(ui)
    assert ui.heading() == "Already shown"
    assert len(events(portal, "credential.rotate")) == 1

    # Revoke: asked first; then done once.
    ui.get("/credentials")
    ui.submit("form[action='/credentials/revoke'] button[type=submit]")
    assert ui.heading() == "Revoke “nightly”?" and not events(portal, "credential.revoke")[1:]
    confirm(ui)
    assert ui.path() == "/credentials" and "Revoked “nightly”" in ui.css("[role=status]").text
    reload(ui)
    assert len(events(portal, "credential.revoke")) == 2  # the robot's, and this one


def test_sessions_and_audit_show_names_devices_and_dates(env):
    portal, ui = env
    # Dana's browser started a kubectl session: signing out asks, and "this browser" leaves it running.
    ui.submit("header form[action='/logout'] button[type=submit]")
    assert ui.heading() == "Sign out?" and "1 kubectl session was started from this browser" in ui.css("main").text
    assert ui.css("input[name=end][value=browser]").is_selected()
    ui.check("sign-out-question")
    ui.submit("section.confirm form[action='/logout'] button[type=submit]")
    assert ui.path() == "/login"
    sign_in(ui, ADMIN, ADMIN_PW)
    ui.get("/admin/sessions")
    row = next(tr for tr in ui.all("tbody tr") if DANA in tr.text)
    assert "Chrome on Linux" in row.text and "127.0.0.1" in row.text, row.text
    click_in_row(ui, DANA, "form[action='/admin/sessions/revoke'] button")
    assert ui.heading() == "End dana's sign-in?" and "Chrome on Linux" in ui.css("main").text
    assert not events(portal, "admin.session.revoke")
    confirm(ui)
    reload(ui)
    assert len(events(portal, "admin.session.revoke")) == 1

    ui.get("/admin/audit")
    table = ui.css("table").text
    dana_id = events(portal, "admin.user.add")[-1]["subject"]
    assert dana_id not in table and DANA in table
    assert not re.search(r"\b1[7-9]\d{8}\b", table), "epoch seconds in the audit details"
    # The inline filter bar: an event type from the list, and a date range.
    from selenium.webdriver.support.ui import Select
    Select(ui.css("#q-type")).select_by_value("credential.revoke")
    ui.submit("form.filterbar button[type=submit]")
    rows = ui.all("tbody tr")
    assert len(rows) == 2 and all("credential.revoke" in r.text for r in rows)
    ui.check("admin-audit-filtered")
    ui.get("/admin/audit?to=2000-01-01")
    assert "No events match" in ui.css("main").text


def test_no_page_is_wider_than_a_phone(env):
    portal, ui = env
    r = portal.cli("user", "add", LONG, "--password-stdin", "--email", "someone.with.a.really.long.address@subdomain.example.org",
                   "--group", "a-group-with-a-long-name-for-wrapping", "--group", "platform-engineering-on-call", stdin=DANA_PW + "\n")
    assert r.returncode == 0, r.stderr
    pages = ["/", "/kubernetes", "/kubernetes?variant=exec", "/credentials", "/admin/users", "/admin/robots", "/admin/credentials",
             "/admin/sessions", "/admin/keys", "/admin/clients", "/admin/throttles", "/admin/audit", "/admin/apiserver"]

    def fits(name):
        width = ui.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (name, width)
        if ui.all("header.top form.signout"):
            top = ui.css("header.top").size["height"]
            assert top < 60, (name, "the top bar wraps", top)
            current = [a for a in ui.all("nav[aria-label=Main] [aria-current=page]") if a.is_displayed()]
            assert len(current) == 1 or name.startswith("/shown"), (name, "no visible current page")
        ui.check("phone" + re.sub(r"[/?=]", "-", name))

    ui.viewport(390, 844, mobile=True)
    try:
        for path in pages:
            ui.get(path)
            fits(path)
        # A confirmation, the robot credential form, a secret shown once, and the sign-in page.
        ui.get(f"/admin/users/{LONG}")
        fits("/admin/users/person")
        ui.submit("form[action='/admin/users/delete'] button[type=submit]")
        fits("/confirm-delete")
        ui.get("/admin/robots")
        ui.fill({"form[method=post][action='/admin/robots'] input[name=name]": "phone-bot", "form[method=post][action='/admin/robots'] input[name=team]": "platform"})
        ui.submit("form[method=post][action='/admin/robots'] button[type=submit]")
        click_in_row(ui, "robot:phone-bot", "a.button")
        fits("/admin/robots/credential")
        ui.fill({"#c-name": "from a phone"})
        ui.submit("form[action='/admin/robots/credential'] button[type=submit]")
        assert ui.path().startswith("/shown/")
        fits("/shown")
        ui.driver.delete_all_cookies()
        ui.get("/login")
        fits("/login")
    finally:
        ui.viewport(1280, 800)


def test_copy_buttons_have_names_and_say_what_happened(env):
    _, ui = env
    ui.driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    ui.get("/login")
    sign_in(ui, ADMIN, ADMIN_PW)
    ui.get("/admin/apiserver")
    names = [b.accessible_name for b in ui.all("button.copy")]
    assert names and all(n.startswith("Copy the ") for n in names) and len(set(names)) == len(names), names
    button = ui.css("button.copy[data-copy=flags]")
    width = button.size["width"]
    pre_width = ui.css("#flags").size["width"]
    button.click()
    ui.wait().until(lambda _: ui.css("#copy-status").get_attribute("textContent").strip())
    assert "the kube-apiserver flags" in ui.css("#copy-status").get_attribute("textContent")
    assert button.size["width"] == width and ui.css("#flags").size["width"] == pre_width  # nothing re-wraps
    # The skip link is the first thing the keyboard reaches.
    from selenium.webdriver.common.keys import Keys
    ui.get("/admin/users")
    ui.css("body").send_keys(Keys.TAB)
    assert ui.driver.switch_to.active_element.text == "Skip to content"
