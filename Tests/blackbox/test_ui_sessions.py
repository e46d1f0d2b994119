"""Sessions that can end (issue 15), in real headless Chromium: "Your devices" (this browser,
another browser, kubectl sessions: name one, sign one out, end one, end everything else), the
sign-out question when this browser started kubectl sessions, changing one's own password, the
confirmation an unproven RP-initiated logout gets, the administrator's "Sign out" and "Sign out
everywhere" on a person's page; /devices laid out inside its cards at desktop width, and the new
pages at phone width.

Other browsers are `requests.Session`s that signed in with the password form (with their own
User-Agent); kubectl sessions are the refresh tokens the kubectl page shows, checked at /token.
Every new page state goes through UI.check (screenshot, axe-core light and dark, security
headers, CSP). With PORTAL_UPDATE_SCREENSHOTS=1 the README's shots are copied to docs/screenshots/."""
import json
import os
import re
import shutil
import tempfile

import pytest
import requests

from conftest import Portal
from test_hardening import csrf_of
from test_kubectl import pki  # noqa: F401 (fixture)
from session_helpers import signed_in
from test_ui_browser import REPO, UI, sign_in

ADMIN, ADMIN_PW = "root-admin", "admin-password-for-sessions"
PW = "a-person-password-for-sessions"
CLUSTER = "staging"
CURL, FIREFOX = "curl/8.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
# UI.check name -> docs/screenshots/<file>.png
README_SHOTS = {"devices": "devices", "sign-out-question": "signout-question", "password": "password"}


@pytest.fixture(scope="module")
def env(pki, tmp_path_factory):  # noqa: F811
    portal = Portal(extra_yaml=f"""
kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:6443
      certificate_authority_file: {pki / 'ca.crt'}
      namespace: team-a
""")
    add_user(portal, ADMIN, ADMIN_PW, admin=True)
    artifacts = tempfile.mkdtemp(prefix="portal-ui-sessions-")
    ui = UI(portal, str(tmp_path_factory.mktemp("chromium-sessions")), artifacts)
    yield portal, ui
    ui.quit()
    print(f"\nbrowser screenshots: {artifacts}")
    if os.environ.get("PORTAL_UPDATE_SCREENSHOTS") == "1":
        out = os.path.join(REPO, "docs", "screenshots")
        os.makedirs(out, exist_ok=True)
        for name, _, shot in ui.visited:
            if name in README_SHOTS:
                shutil.copy(shot, os.path.join(out, README_SHOTS[name] + ".png"))
    assert portal.stop() == 0
    shutil.rmtree(portal.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Helpers


def add_user(portal, name, password=PW, admin=False):
    r = portal.cli("user", "add", name, "--password-stdin", *(["--admin"] if admin else []), stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    return name


def other_browser(portal, user, password=PW, agent=CURL):
    """Another browser signed in with the password form; None when the portal refused the password."""
    s = requests.Session()
    s.headers["User-Agent"] = agent
    page = s.get(portal.base + "/login")
    r = s.post(portal.base + "/login", data={"csrf": csrf_of(page.text), "username": user, "password": password},
               allow_redirects=False)
    return s if r.status_code == 303 and not r.headers["Location"].startswith("/login") else None


def fresh_sign_in(ui, user, password=PW):
    ui.driver.delete_all_cookies()
    ui.get("/login")
    sign_in(ui, user, password)
    assert ui.path() == "/", (ui.path(), ui.css("main").text)


def kubectl_command(ui):
    """The kubectl page's bash line, minted in this browser: returns its refresh token."""
    ui.get("/kubernetes")
    ui.submit("form[action='/kubernetes/command'] button[type=submit]")
    assert ui.path().startswith("/shown/"), ui.path()
    line = ui.css("#bash-0").get_attribute("textContent")
    m = re.search(r"refresh-token=([A-Za-z0-9_\-]+)", line)
    assert m, "no refresh token in the kubectl line"
    return m.group(1)


def kubectl_from(portal, s):
    """The kubectl page's bash line, minted by another browser (a requests.Session): its refresh token."""
    page = s.get(portal.base + "/kubernetes")
    assert page.status_code == 200, page.status_code
    r = s.post(portal.base + "/kubernetes/command", data={"csrf": csrf_of(page.text), "cluster": CLUSTER}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), (r.status_code, r.headers)
    m = re.search(r"refresh-token=([A-Za-z0-9_\-]+)", s.get(portal.base + r.headers["Location"]).text)
    assert m, "no refresh token in the kubectl line"
    return m.group(1)


def refresh(portal, token):
    """kubectl's refresh at /token (the public client `kubernetes`)."""
    return requests.post(portal.base + "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "kubernetes"},
                         timeout=10)


def assert_alive(portal, token):
    """Refreshes (a rotation): returns the successor token."""
    r = refresh(portal, token)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["refresh_token"]


def assert_dead(portal, token):
    r = refresh(portal, token)
    assert r.status_code == 400 and r.json().get("error") == "invalid_grant", (r.status_code, r.text)


def sessions_of(portal, user):
    """`portal session list --user`: [(kind, client, device)]."""
    r = portal.cli("session", "list", "--user", user)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()[1:] if line.strip()]
    return [(row[1], row[2], row[6]) for row in rows]


def events(portal, kind):
    r = portal.cli("audit", "--type", kind, "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def rows(ui, section):
    return ui.all(f"section[aria-labelledby={section}] tbody tr")


def browser_rows(ui):
    return rows(ui, "browsers-title")


def session_rows(ui):
    return rows(ui, "sessions-title")


def row_with(ui, section, text):
    found = [tr for tr in rows(ui, section) if text in tr.text]
    assert len(found) == 1, (text, [tr.text for tr in rows(ui, section)])
    return found[0]


def notice(ui):
    return ui.css("[role=status]").text


def confirm(ui):
    ui.submit("main form input[name=confirm][value=yes] ~ .actions-row button[type=submit]")


def tables_fit_their_cards(ui, name):
    """At desktop width every table stays inside its card (no row running over the card's edge)."""
    over = ui.driver.execute_script("""
        return [...document.querySelectorAll('main table')].map(t => {
          const card = t.closest('section'), cs = getComputedStyle(card);
          const inner = card.getBoundingClientRect().right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth);
          return [card.getAttribute('aria-labelledby'), Math.round(t.getBoundingClientRect().right), Math.round(inner)];
        }).filter(([_, table, inner]) => table > inner + 1);""")
    assert not over, (name, "tables wider than their cards [card, table right edge, card content edge]", over)


def fits_the_phone(ui, name):
    """Nothing wider than the screen, except inside scrolling boxes and text only screen readers get
    (clipped to 1 px: the visually hidden labels and the card tables' header row)."""
    width = ui.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], (name, "wider than the phone", width)
    too_wide = ui.driver.execute_script("""
        const w = document.documentElement.clientWidth;
        return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1
          && !e.closest('pre, .table-wrap, .visually-hidden, table.cards thead')).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));""")
    assert not too_wide, (name, too_wide)


# ---------------------------------------------------------------------------------------------
# 1. Your devices


def test_your_devices_lists_names_and_ends_browsers_and_kubectl_sessions(env):
    portal, ui = env
    user = add_user(portal, "ana")
    fresh_sign_in(ui, user)
    # Reached from the home page.
    assert ui.css("main a[href='/devices']").text == "Your devices"
    first = kubectl_command(ui)
    second = kubectl_command(ui)
    curl = other_browser(portal, user)
    firefox = other_browser(portal, user, agent=FIREFOX)
    assert curl and firefox

    ui.get("/")
    ui.click_and_wait(ui.css("main a[href='/devices']"))
    assert ui.path() == "/devices" and ui.heading() == "Your devices"
    browsers = [tr.text for tr in browser_rows(ui)]
    assert len(browsers) == 3, browsers
    this = row_with(ui, "browsers-title", "This browser")
    assert "Chrome on Linux" in this.text and "127.0.0.1" in this.text, this.text
    assert browser_rows(ui)[0] == this, "this browser is listed first"
    assert not this.find_elements("css selector", "form[action='/devices/revoke']"), "this browser is signed out from the top bar"
    assert "This browser" not in row_with(ui, "browsers-title", "curl").text
    assert "This browser" not in row_with(ui, "browsers-title", "Firefox on Windows").text
    kubectl = [tr.text for tr in session_rows(ui)]
    assert len(kubectl) == 2, kubectl
    for tr in session_rows(ui):
        assert "from this browser" in tr.text and "the kubectl page" in tr.text and "127.0.0.1" in tr.text, tr.text
        assert "Chrome on Linux" in tr.text, tr.text
    assert ui.all("form[action='/devices/revoke-others'] button[type=submit]")
    # The README's shot: both lists in view.
    ui.driver.execute_script("document.getElementById('browsers-title').closest('section').scrollIntoView()")
    ui.check("devices")

    # Naming a kubectl session: the name shows, on the page and in the CLI.
    ids = [tr.find_element("css selector", "input[name=id]").get_attribute("value") for tr in session_rows(ui)]
    first_id = ids[0]
    ui.fill({f"#label-{first_id}": "work laptop"})
    ui.submit(f"form[action='/devices/label'] input[name=id][value='{first_id}'] ~ button[type=submit]")
    assert ui.path() == "/devices"
    assert "Named “work laptop”." in notice(ui)
    named = row_with(ui, "sessions-title", "work laptop")
    assert named.find_element("css selector", "strong").text == "work laptop"
    assert named.find_element("css selector", "input[name=label]").get_attribute("value") == "work laptop"
    assert ("kubectl", "kubernetes", "work laptop") in sessions_of(portal, user)
    ui.check("devices-named")

    # "Sign out" on the curl browser: that browser is sent to sign in; the others stay.
    assert signed_in(portal, curl)
    ui.click_and_wait(row_with(ui, "browsers-title", "curl").find_element("css selector", "form[action='/devices/revoke'] button"))
    assert ui.path() == "/devices"
    assert "Signed out curl at 127.0.0.1." in notice(ui)
    assert not [tr for tr in browser_rows(ui) if "curl" in tr.text]
    assert len(browser_rows(ui)) == 2
    ui.check("devices-browser-signed-out")
    assert not signed_in(portal, curl)
    assert signed_in(portal, firefox)

    # "End" on the named kubectl session: its refresh token is dead; the other one still refreshes.
    which = {}
    for token in (first, second):
        successor = assert_alive(portal, token)
        which[successor] = token
    # The label tells which token is which family: end the named one, then exactly one token is dead.
    ui.get("/devices")
    ui.click_and_wait(row_with(ui, "sessions-title", "work laptop").find_element("css selector", "form[action='/devices/revoke'] button"))
    assert ui.path() == "/devices"
    assert "Ended “work laptop”. kubectl there stops within" in notice(ui), notice(ui)
    assert len(session_rows(ui)) == 1 and "work laptop" not in ui.css("section[aria-labelledby=sessions-title]").text
    ui.check("devices-kubectl-ended")
    outcomes = {s: refresh(portal, s) for s in which}
    dead = [s for s, r in outcomes.items() if r.status_code == 400 and r.json().get("error") == "invalid_grant"]
    alive = [r.json()["refresh_token"] for s, r in outcomes.items() if r.status_code == 200]
    assert len(dead) == 1 and len(alive) == 1, {s[:8]: (r.status_code, r.text[:100]) for s, r in outcomes.items()}

    # "End everything except this browser": exactly this browser is left, no kubectl sessions.
    ui.get("/devices")
    ui.submit("form[action='/devices/revoke-others'] button[type=submit]")
    assert ui.heading() == "End everything except this browser?"
    assert "1 other browser signs out" in ui.css("main").text and "the ones started from this browser included" in ui.css("main").text
    ui.check("devices-revoke-others-confirm")
    ui.submit("section.confirm form[action='/devices/revoke-others'] button[type=submit]")
    assert ui.path() == "/devices"
    assert "Ended 1 other browser and 1 kubectl or application session. Only this browser is still signed in." in notice(ui), notice(ui)
    browsers = browser_rows(ui)
    assert len(browsers) == 1 and "This browser" in browsers[0].text, [tr.text for tr in browsers]
    assert not session_rows(ui) and "None." in ui.css("section[aria-labelledby=sessions-title]").text
    assert not ui.all("form[action='/devices/revoke-others']"), "nothing else to end: no button"
    ui.check("devices-only-this-browser")
    assert not signed_in(portal, firefox)
    assert_dead(portal, alive[0])
    assert [k for k, _, _ in sessions_of(portal, user)] == ["browser"]
    ui.get("/")
    assert ui.path() == "/", "this browser stays signed in"
    assert len(events(portal, "session.revoke_others")) == 1


def test_your_devices_lays_out_inside_its_cards_at_desktop_width(env):
    portal, ui = env
    user = add_user(portal, "anton")
    fresh_sign_in(ui, user)
    kubectl_command(ui)
    assert other_browser(portal, user)
    ui.get("/devices")
    assert len(browser_rows(ui)) == 2 and len(session_rows(ui)) == 1
    tables_fit_their_cards(ui, "/devices")
    # The name field looks like the portal's other fields (its font, not the browser's default).
    field = ui.css("section[aria-labelledby=sessions-title] input[name=label]")
    assert ui.driver.execute_script("return getComputedStyle(arguments[0]).fontFamily === getComputedStyle(document.body).fontFamily", field), \
        ("/devices: the 'Name this device' field is not styled like the portal's inputs",
         ui.driver.execute_script("const s = getComputedStyle(arguments[0]); return [s.fontFamily, s.fontSize, s.borderStyle]", field))


# ---------------------------------------------------------------------------------------------
# 2. The sign-out question


def test_sign_out_asks_when_this_browser_started_kubectl_and_can_end_it_too(env):
    portal, ui = env
    user = add_user(portal, "ben")

    # "This browser" (preselected): kubectl keeps working.
    fresh_sign_in(ui, user)
    kept = kubectl_command(ui)
    ui.get("/")
    ui.submit("header form[action='/logout'] button[type=submit]")
    assert ui.heading() == "Sign out?"
    assert "1 kubectl session was started from this browser" in ui.css("main").text
    assert ui.css("input[name=end][value=browser]").is_selected()
    assert not ui.css("input[name=end][value=all]").is_selected()
    assert "This browser and every kubectl session started from it" in ui.css("section.confirm fieldset").text
    ui.check("sign-out-question", headers_url=portal.base + "/")
    ui.submit("section.confirm form[action='/logout'] button[type=submit]")
    assert ui.path() == "/login" and "You have signed out." in notice(ui)
    kept = assert_alive(portal, kept)
    assert ("kubectl", "kubernetes", "Chrome on Linux") in sessions_of(portal, user)

    # "This browser and every kubectl session started from it": that family ends too.
    fresh_sign_in(ui, user)
    ended = kubectl_command(ui)
    ui.get("/")
    ui.submit("header form[action='/logout'] button[type=submit]")
    assert ui.heading() == "Sign out?" and "1 kubectl session was started from this browser" in ui.css("main").text
    ui.css("section.confirm input[name=end][value=all]").click()
    ui.submit("section.confirm form[action='/logout'] button[type=submit]")
    assert ui.path() == "/login" and "You have signed out." in notice(ui)
    ui.check("signed-out-all")
    assert_dead(portal, ended)
    # Only the session started from the other (earlier) browser sign-in is left.
    assert [k for k, _, _ in sessions_of(portal, user)] == ["kubectl"]
    assert_alive(portal, kept)
    logout = [e for e in events(portal, "logout") if e.get("actor") == user]
    assert [e["details"].get("ended") for e in logout][:2] == ["all", "browser"], logout
    assert logout[0]["details"].get("families") == "1", logout[0]

    # No kubectl session from this browser: straight to sign-in, no question.
    fresh_sign_in(ui, user)
    ui.submit("header form[action='/logout'] button[type=submit]")
    assert ui.path() == "/login" and "You have signed out." in notice(ui)
    ui.get("/")
    assert ui.path().startswith("/login")


# ---------------------------------------------------------------------------------------------
# 3. Changing one's own password


def test_changing_the_password_signs_out_everything_else(env):
    portal, ui = env
    user = add_user(portal, "cleo")
    new = "cleo-new-password-in-the-browser"
    fresh_sign_in(ui, user)
    token = kubectl_command(ui)
    elsewhere = other_browser(portal, user)
    assert elsewhere

    ui.get("/")
    ui.click_and_wait(ui.css("main a[href='/account/password']"))
    assert ui.path() == "/account/password" and ui.heading() == "Change your password"
    assert ui.driver.execute_script("return document.activeElement && document.activeElement.id") == "current"
    ui.check("password")

    # The wrong current password: an alert, nothing changes.
    ui.fill({"#current": "not-the-current-password", "#password": new, "#confirm": new})
    ui.submit("form[action='/account/password'] button[type=submit]")
    assert ui.heading() == "Change your password"
    assert ui.css("[role=alert]").text == "The current password is not right. Nothing was changed."
    ui.check("password-wrong-current", headers_url=portal.base + "/account/password")
    # The two new ones differ: the same.
    ui.fill({"#current": PW, "#password": new, "#confirm": new + "-typo"})
    ui.submit("form[action='/account/password'] button[type=submit]")
    assert ui.css("[role=alert]").text == "The two new passwords differ. Nothing was changed."
    assert signed_in(portal, elsewhere)
    token = assert_alive(portal, token)
    check_old = other_browser(portal, user)
    assert check_old, "the old password still works after the refused changes"
    check_old.close()

    # The right one: back on Your devices with the notice; everything else is signed out.
    ui.fill({"#current": PW, "#password": new, "#confirm": new})
    ui.submit("form[action='/account/password'] button[type=submit]")
    assert ui.path() == "/devices", ui.path()
    assert "Password changed. Every other browser, kubectl and application session has been signed out." in notice(ui)
    browsers = browser_rows(ui)
    assert len(browsers) == 1 and "This browser" in browsers[0].text, [tr.text for tr in browsers]
    assert not session_rows(ui)
    ui.check("password-changed")
    assert not signed_in(portal, elsewhere)
    assert_dead(portal, token)
    ui.get("/")
    assert ui.path() == "/", "this browser stays signed in"
    # The new password signs in; the old one does not.
    assert other_browser(portal, user, password=new)
    assert other_browser(portal, user, password=PW) is None


# ---------------------------------------------------------------------------------------------
# 4. RP-initiated logout without proof


def test_end_session_without_a_hint_asks_and_never_redirects(env):
    portal, ui = env
    user = add_user(portal, "dmitri")
    fresh_sign_in(ui, user)

    ui.get("/end-session")
    assert ui.path() == "/end-session" and ui.heading() == "Sign out?"
    assert f"An application asks you to sign out of the portal as {user}." in ui.css("main").text
    assert ui.css("section.confirm form[action='/logout']")
    ui.check("end-session-confirm")
    assert ui.path() == "/end-session"
    ui.get("/")
    assert ui.path() == "/", "asking signs nobody out"

    # An application named, a return address it cannot prove: the page says why it stays here.
    elsewhere = "http://127.0.0.1:9/elsewhere"
    ui.get("/end-session?client_id=rp-public&state=s1&post_logout_redirect_uri=" + requests.utils.quote(elsewhere, safe=""))
    assert ui.path().startswith("/end-session") and ui.heading() == "Sign out?"
    text = ui.css("main").text
    assert f"Public test app asks you to sign out of the portal as {user}." in text, text
    assert f"will not send you back to {elsewhere}" in text, text
    assert not [a for a in ui.all("a") if (a.get_attribute("href") or "").startswith(elsewhere)]
    ui.check("end-session-confirm-unproven")
    confirm(ui)
    assert ui.path() == "/login", ui.path()
    assert "You have signed out." in notice(ui)
    ui.get("/")
    assert ui.path().startswith("/login")
    assert [e["details"].get("ended") for e in events(portal, "logout") if e.get("actor") == user] == ["browser"]


# ---------------------------------------------------------------------------------------------
# 5. The administrator's person page


def test_admin_signs_a_browser_out_and_a_person_out_everywhere(env):
    portal, ui = env
    user = add_user(portal, "erin")
    curl = other_browser(portal, user)
    firefox = other_browser(portal, user, agent=FIREFOX)
    assert curl and firefox
    token = kubectl_from(portal, curl)
    fresh_sign_in(ui, ADMIN, ADMIN_PW)

    ui.get(f"/admin/users/{user}")
    assert ui.heading() == user
    table = ui.css("section[aria-labelledby=sessions-title]")
    rows_ = table.find_elements("css selector", "tbody tr")
    browsers = [tr for tr in rows_ if tr.find_elements("css selector", "form[action='/admin/sessions/end']")]
    assert len(browsers) == 2, [tr.text for tr in rows_]
    kubectl = [tr for tr in rows_ if tr.find_elements("css selector", "form[action='/admin/sessions/revoke']")]
    assert len(kubectl) == 1 and "curl" in kubectl[0].text and "kubernetes" in kubectl[0].text, [tr.text for tr in rows_]
    tables_fit_their_cards(ui, f"/admin/users/{user}")
    assert any("curl" in tr.text for tr in browsers) and any("Firefox on Windows" in tr.text for tr in browsers)
    for tr in browsers:
        assert tr.find_element("css selector", "form[action='/admin/sessions/end'] button").text.startswith("Sign out")
    ui.check("admin-person-sessions")

    # "Sign out" on one browser: asked first, then that one is gone.
    row = next(tr for tr in browsers if "curl" in tr.text)
    ui.click_and_wait(row.find_element("css selector", "form[action='/admin/sessions/end'] button"))
    assert ui.heading() == f"Sign {user} out of this browser?", ui.heading()
    assert "The portal session in curl at 127.0.0.1" in ui.css("main").text
    assert "Every kubectl and application session started from that browser ends too" in ui.css("main").text
    ui.check("admin-confirm-browser-signout", headers_url=portal.base + f"/admin/users/{user}")
    assert signed_in(portal, curl), "nothing happens before the confirmation"
    token = assert_alive(portal, token)
    confirm(ui)
    assert ui.path() == f"/admin/users/{user}", ui.path()
    assert "Signed out; 1 kubectl or application session ended with it." in notice(ui), notice(ui)
    left = ui.css("section[aria-labelledby=sessions-title]").find_elements("css selector", "form[action='/admin/sessions/end']")
    assert len(left) == 1
    assert "curl" not in ui.css("section[aria-labelledby=sessions-title]").text
    ui.check("admin-person-browser-signed-out")
    assert not signed_in(portal, curl)
    assert_dead(portal, token)
    assert "No kubectl or application sign-ins." in ui.css("section[aria-labelledby=sessions-title]").text
    assert signed_in(portal, firefox)
    ends = events(portal, "admin.session.end")
    assert len(ends) == 1 and ends[0]["actor"] == ADMIN and ends[0]["details"].get("families") == "1", ends

    # "Sign out everywhere": asked first, naming what ends; then the other browser is out too, audited with the admin as actor.
    ui.submit("form[action='/admin/users/signout'] button[type=submit]")
    assert ui.heading() == f"Sign {user} out everywhere?", ui.heading()
    assert "1 browser session ends and 0 kubectl or application sessions end at once" in ui.css("main").text, ui.css("main").text
    ui.check("admin-confirm-signout-everywhere", headers_url=portal.base + f"/admin/users/{user}")
    assert signed_in(portal, firefox) and not events(portal, "admin.user.signout")
    confirm(ui)
    assert ui.path() == f"/admin/users/{user}", ui.path()
    assert f"{user} is signed out everywhere: 1 browser session and 0 kubectl or application sessions ended." in notice(ui), notice(ui)
    assert not ui.css("section[aria-labelledby=sessions-title]").find_elements("css selector", "form[action='/admin/sessions/end']")
    ui.check("admin-person-signed-out-everywhere")
    assert not signed_in(portal, firefox)
    signouts = events(portal, "admin.user.signout")
    assert len(signouts) == 1 and signouts[0]["actor"] == ADMIN, signouts
    assert signouts[0]["details"].get("username") == user and signouts[0]["details"].get("sessions") == "1", signouts
    assert sessions_of(portal, user) == []
    # The admin's own browser is untouched, and the person can sign in again.
    ui.get("/admin/users")
    assert ui.path() == "/admin/users"
    assert other_browser(portal, user)


# ---------------------------------------------------------------------------------------------
# 6. Phone width


def test_devices_and_password_fit_a_phone(env):
    portal, ui = env
    user = add_user(portal, "fatima-with-a-rather-long-username-for-wrapping")
    fresh_sign_in(ui, user)
    kubectl_command(ui)
    assert other_browser(portal, user, agent=FIREFOX)
    ui.get("/devices")
    first = session_rows(ui)[0].find_element("css selector", "input[name=id]").get_attribute("value")
    ui.fill({f"#label-{first}": "a-sixty-character-device-name-without-any-spaces-to-break-it"[:60]})
    ui.submit(f"form[action='/devices/label'] input[name=id][value='{first}'] ~ button[type=submit]")
    assert "Named" in notice(ui)
    ui.viewport(390, 844, mobile=True)
    try:
        ui.get("/devices")
        assert len(browser_rows(ui)) == 2 and len(session_rows(ui)) == 1
        fits_the_phone(ui, "/devices")
        ui.check("phone-devices")
        ui.get("/account/password")
        fits_the_phone(ui, "/account/password")
        ui.check("phone-password")
        ui.submit("header form[action='/logout'] button[type=submit]")
        assert ui.heading() == "Sign out?"
        fits_the_phone(ui, "sign-out question")
        ui.check("phone-sign-out-question", headers_url=portal.base + "/")
    finally:
        ui.viewport(1280, 800)


def test_a_device_sign_in_is_approved_and_denied_in_chromium(env):
    """RFC 8628: a device without a browser (requests, its own User-Agent) asks; the person opens the
    link in Chromium, signs in, reads who asked, and approves — then denies a second one."""
    portal, ui = env
    import time
    add_user(portal, "devon")
    grant = "urn:ietf:params:oauth:grant-type:device_code"
    device = requests.Session()
    device.headers["User-Agent"] = "kubectl-portal/0.1 (linux/amd64)"
    d = device.post(portal.base + "/device/code", data={"client_id": "kubernetes"}).json()
    ui.driver.delete_all_cookies()
    ui.get(d["verification_uri_complete"].removeprefix(portal.issuer))
    assert ui.path().startswith("/login")
    sign_in(ui, "devon", PW)
    assert ui.path().startswith("/device?user_code="), ui.path()
    text = ui.css("main").text
    assert ui.heading() == "Sign in Kubernetes (kubectl) on another device?"
    assert d["user_code"] in text and "Approve only if you started this yourself" in text and "127.0.0.1" in text
    ui.check("device-approve")
    ui.click_and_wait(ui.css("button[name=decision][value=approve]"))
    assert ui.path() == "/device" and "Approved" in ui.css("[role=status]").text
    ui.check("device-approved")
    time.sleep(5)
    r = device.post(portal.base + "/token", data={"grant_type": grant, "device_code": d["device_code"], "client_id": "kubernetes"})
    assert r.status_code == 200, r.text
    # The typed path, and a denial.
    d2 = device.post(portal.base + "/device/code", data={"client_id": "kubernetes"}).json()
    ui.get("/device")
    ui.check("device-enter-code")
    ui.fill({"#user_code": d2["user_code"].lower()})
    ui.submit("form[action='/device'] button[type=submit]")
    ui.click_and_wait(ui.css("button[name=decision][value=deny]"))
    assert "Denied" in ui.css("[role=status]").text
    r = device.post(portal.base + "/token", data={"grant_type": grant, "device_code": d2["device_code"], "client_id": "kubernetes"})
    assert r.status_code == 400 and r.json()["error"] == "access_denied", r.text
