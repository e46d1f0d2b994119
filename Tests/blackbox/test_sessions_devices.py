"""Issue 15, sessions that can end, through a real `portal serve` driven with `requests` (and the real
kubectl for one test): "Your devices" (list, label, end one browser or one family, everything but
this browser), the password change ending everything else, the CLI (`portal session list|revoke`)
and the admin's person page, and real kubectl stopping with the portal's message once its family is
ended. Revocation and introspection are in test_sessions_revocation.py, RP-initiated logout and the
sign-out choice in test_sessions_logout.py; the helpers in session_helpers.py.

Every test uses people of its own, so the module-scoped portal can be shared."""
import re

import pytest

from conftest import RP_SECRET
from session_helpers import (CLUSTER, PASSWORD, add_user, assert_dead, audit, claims_of, code_flow, devices, flash_text,
                             kubectl_command, login, main_portal, refresh, signed_in, try_login)
from test_hardening import csrf_of, session_from
from test_kubectl import Kubectl, pki, refresh_with, wait_for_refresh_window  # noqa: F401 (pki is a fixture)


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
# 1. Your devices


def test_devices_lists_browsers_and_ends_one_browser_or_one_family(portal):
    add_user(portal, "dev-a")
    here = login(portal, "dev-a")
    there = login(portal, "dev-a", s=session_from("127.0.0.2"))
    browsers, families, page = devices(portal, here)
    assert len(browsers) == 2, page
    assert [b["current"] for b in browsers].count(True) == 1
    other = [b for b in browsers if not b["current"]][0]
    assert other["id"] and "127.0.0.2" in other["html"]
    assert not families
    # A family, shown and ended.
    t = code_flow(portal, here)
    _, families, _ = devices(portal, here)
    assert len(families) == 1 and families[0]["id"]
    assert "Public test app" in families[0]["html"] and "from this browser" in families[0]["html"]
    assert "signing in to Public test app" in families[0]["html"]
    # Without CSRF nothing happens.
    r = here.post(portal.base + "/devices/revoke", data={"id": families[0]["id"]}, allow_redirects=False)
    assert r.status_code == 403
    assert refresh(portal, t["refresh_token"]).status_code == 200
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": families[0]["id"]}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "Ended" in flash_text(here.get(portal.base + "/devices").text)
    t2 = refresh(portal, t["refresh_token"])
    assert_dead(t2)
    assert not devices(portal, here)[1]
    # The other browser, signed out from here.
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": other["id"]}, allow_redirects=False)
    assert r.status_code == 303
    assert not signed_in(portal, there)
    assert signed_in(portal, here)
    browsers, _, _ = devices(portal, here)
    assert len(browsers) == 1 and browsers[0]["current"]
    # This browser's own id (the sid of its id_tokens) is refused: that is what Sign out is for.
    sid = claims_of(code_flow(portal, here)["id_token"])["sid"]
    r = here.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": sid}, allow_redirects=True)
    assert signed_in(portal, here)


def test_devices_label_and_other_peoples_ids(portal):
    add_user(portal, "dev-b")
    add_user(portal, "dev-c")
    me = login(portal, "dev-b")
    them = login(portal, "dev-c")
    mine = code_flow(portal, me)
    theirs = code_flow(portal, them)
    _, my_families, page = devices(portal, me)
    _, their_families, _ = devices(portal, them)
    mine_id, theirs_id = my_families[0]["id"], their_families[0]["id"]
    csrf = csrf_of(page)
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": mine_id, "label": "Work laptop <b>"}, allow_redirects=False)
    assert r.status_code == 303
    _, my_families, page = devices(portal, me)
    assert "<b>" not in my_families[0]["html"].split("</strong>")[0]  # escaped, never markup
    assert 'value="Work laptop &lt;b&gt;"' in my_families[0]["html"]
    # Too long: refused, the old label stays.
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": mine_id, "label": "x" * 61}, allow_redirects=False)
    assert r.status_code == 303
    after = me.get(portal.base + "/devices").text
    assert "60 characters" in flash_text(after)
    assert 'value="Work laptop &lt;b&gt;"' in devices(portal, me)[1][0]["html"]
    # Someone else's family: an error, and their family is neither renamed nor ended.
    r = me.post(portal.base + "/devices/label", data={"csrf": csrf, "id": theirs_id, "label": "pwned"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "not yours" in flash_text(me.get(portal.base + "/devices").text)
    r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": theirs_id}, allow_redirects=False)
    assert r.status_code == 303
    assert "not yours" in flash_text(me.get(portal.base + "/devices").text)
    _, their_families, _ = devices(portal, them)
    assert len(their_families) == 1 and "pwned" not in their_families[0]["html"]
    assert refresh(portal, theirs["refresh_token"]).status_code == 200
    # Someone else's browser session id (the sid of their id_token): refused too.
    r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": claims_of(theirs["id_token"])["sid"]}, allow_redirects=False)
    assert r.status_code == 303
    assert signed_in(portal, them)
    for bad in ["", "nonexistent", "' OR 1=1 --"]:
        r = me.post(portal.base + "/devices/revoke", data={"csrf": csrf, "id": bad}, allow_redirects=False)
        assert r.status_code == 303
    assert refresh(portal, mine["refresh_token"]).status_code == 200


def test_devices_revoke_others_leaves_exactly_this_browser(portal):
    add_user(portal, "dev-d")
    here = login(portal, "dev-d")
    there = login(portal, "dev-d")
    families = [code_flow(portal, here), code_flow(portal, there), code_flow(portal, there, client="rp-confidential", secret=RP_SECRET)]
    _, kubectl_rt = kubectl_command(portal, here)
    _, fams, page = devices(portal, here)
    assert len(fams) == 4
    assert sum("the kubectl page" in f["html"] for f in fams) == 1
    assert sum("from this browser" in f["html"] for f in fams) == 2
    assert 'action="/devices/revoke-others"' in page
    # First the question (nothing ends), then the confirmed POST.
    r = here.post(portal.base + "/devices/revoke-others", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert r.status_code == 200 and "End everything except this browser?" in r.text and "4 kubectl or application sessions end" in r.text
    assert signed_in(portal, there)
    r = here.post(portal.base + "/devices/revoke-others", data={"csrf": csrf_of(r.text), "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    notice = flash_text(here.get(portal.base + "/devices").text)
    assert "1 other browser" in notice and "4 kubectl or application sessions" in notice, notice
    assert not signed_in(portal, there)
    assert signed_in(portal, here)
    assert_dead(refresh(portal, families[0]["refresh_token"]))
    assert_dead(refresh(portal, families[1]["refresh_token"]))
    assert_dead(refresh(portal, families[2]["refresh_token"], client="rp-confidential", secret=RP_SECRET))
    assert_dead(refresh_with(portal, kubectl_rt))
    browsers, fams, _ = devices(portal, here)
    assert len(browsers) == 1 and browsers[0]["current"] and not fams
    # This browser still signs in to applications.
    assert refresh(portal, code_flow(portal, here)["refresh_token"]).status_code == 200


# ---------------------------------------------------------------------------------------------
# 2. Password change


def test_password_change_ends_everything_else(portal):
    add_user(portal, "pw-a")
    here = login(portal, "pw-a")
    there = login(portal, "pw-a")
    app_here = code_flow(portal, here)
    app_there = code_flow(portal, there)
    _, kubectl_rt = kubectl_command(portal, here)
    page = here.get(portal.base + "/account/password")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    csrf = csrf_of(page.text)
    new = "a-brand-new-password-2"
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": "not-the-password", "password": new, "confirm": new})
    assert r.status_code == 403 and "Nothing was changed" in r.text
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": new, "confirm": new + "x"})
    assert r.status_code == 400 and "Nothing was changed" in r.text
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": "short", "confirm": "short"})
    assert r.status_code == 400
    r = here.post(portal.base + "/account/password", data={"current": PASSWORD, "password": new, "confirm": new}, allow_redirects=False)
    assert r.status_code == 403
    # Nothing changed so far.
    assert signed_in(portal, there)
    r = refresh(portal, app_there["refresh_token"])
    assert r.status_code == 200
    app_there = r.json()
    assert try_login(portal, "pw-a", PASSWORD)[1].status_code == 303
    assert try_login(portal, "pw-a", new)[1].status_code == 401
    # The change.
    r = here.post(portal.base + "/account/password", data={"csrf": csrf, "current": PASSWORD, "password": new, "confirm": new},
                  allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/devices"
    assert "Password changed" in flash_text(here.get(portal.base + "/devices").text)
    assert signed_in(portal, here)
    assert not signed_in(portal, there)
    assert_dead(refresh(portal, app_here["refresh_token"]))
    assert_dead(refresh(portal, app_there["refresh_token"]))
    assert_dead(refresh_with(portal, kubectl_rt))
    assert try_login(portal, "pw-a", PASSWORD)[1].status_code == 401
    assert try_login(portal, "pw-a", new)[1].status_code == 303
    assert PASSWORD not in portal.logs() and new not in portal.logs()


# ---------------------------------------------------------------------------------------------
# 3. Admin and CLI


def test_cli_session_list_and_revoke(portal):
    add_user(portal, "cli-a")
    b1 = login(portal, "cli-a")
    b2 = login(portal, "cli-a")
    app = code_flow(portal, b1)
    sid1 = claims_of(app["id_token"])["sid"]
    sid2 = claims_of(code_flow(portal, b2)["id_token"])["sid"]
    _, kubectl_rt = kubectl_command(portal, b1)
    _, fams, _ = devices(portal, b1)
    assert len(fams) == 3
    r = portal.cli("session", "list", "--user", "cli-a")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    header = out.splitlines()[0]
    for col in ("ID", "KIND", "CLIENT", "STARTED", "LAST USED", "ADDRESS", "DEVICE"):
        assert col in header, header
    cols = lambda line: [c.strip() for c in re.split(r"\t|\s{2,}", line.strip())]  # noqa: E731
    lines = {cols(line)[0]: cols(line) for line in out.splitlines()[1:] if line.strip()}
    assert sid1 in lines and sid2 in lines, out
    assert lines[sid1][1] == "browser" and lines[sid2][1] == "browser", out
    assert len(lines) == 5, out
    for f in fams:
        assert f["id"] in lines, out
    kinds = sorted((lines[f["id"]][1], lines[f["id"]][2]) for f in fams)
    assert kinds == [("app", "rp-public"), ("app", "rp-public"), ("kubectl", "kubernetes")], out
    assert portal.cli("session", "list", "--user", "no-such-person").returncode != 0
    # One browser session.
    r = portal.cli("session", "revoke", sid2)
    assert r.returncode == 0, r.stderr
    assert not signed_in(portal, b2) and signed_in(portal, b1)
    # One family.
    app_family = [f["id"] for f in fams if "Public test app" in f["html"] and "from this browser" in f["html"]][0]
    r = portal.cli("session", "revoke", app_family)
    assert r.returncode == 0, r.stderr
    assert_dead(refresh(portal, app["refresh_token"]))
    assert portal.cli("session", "revoke", "no-such-session").returncode != 0
    # Everything of the person.
    r = portal.cli("session", "revoke", "--user", "cli-a", "--all")
    assert r.returncode == 0, r.stderr
    assert not signed_in(portal, b1)
    assert_dead(refresh_with(portal, kubectl_rt))
    r = portal.cli("session", "list", "--user", "cli-a")
    assert r.returncode == 0 and len([line for line in r.stdout.splitlines()[1:] if line.strip()]) == 0, r.stdout


def test_admin_person_page_ends_one_browser_and_signs_out_everywhere(portal):
    add_user(portal, "sess-admin", admin=True)
    add_user(portal, "adm-a")
    admin = login(portal, "sess-admin")
    person = login(portal, "adm-a")
    second = login(portal, "adm-a")
    app = code_flow(portal, person)
    second_app = code_flow(portal, second)
    _, kubectl_rt = kubectl_command(portal, person)
    _, fams, _ = devices(portal, person)
    page = admin.get(portal.base + "/admin/users/adm-a")
    assert page.status_code == 200
    sid = claims_of(app["id_token"])["sid"]
    second_sid = claims_of(second_app["id_token"])["sid"]
    # Browser sessions and families together, each with its own button.
    assert sid in page.text and second_sid in page.text, "the person page does not list the browser sessions"
    for f in fams:
        assert f["id"] in page.text, "the person page does not list every family"
    assert "Sign out everywhere" in page.text and 'action="/admin/users/signout"' in page.text
    csrf = csrf_of(page.text)
    # Not for a non-admin.
    r = person.post(portal.base + "/admin/users/signout", data={"csrf": csrf_of(person.get(portal.base + "/").text), "username": "adm-a",
                                                                "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 403, r.status_code
    assert signed_in(portal, person)
    # One browser session, from the admin pages: it asks first, then ends that browser and what it started.
    r = admin.post(portal.base + "/admin/sessions/end", data={"csrf": csrf, "id": second_sid}, allow_redirects=False)
    assert r.status_code == 200 and 'name="confirm" value="yes"' in r.text
    assert signed_in(portal, second)
    r = admin.post(portal.base + "/admin/sessions/end", data={"csrf": csrf, "id": second_sid, "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 303
    assert not signed_in(portal, second) and signed_in(portal, person)
    assert_dead(refresh(portal, second_app["refresh_token"]))
    # Everywhere: a confirmation step naming what ends, then everything.
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf, "username": "adm-a"}, allow_redirects=False)
    assert r.status_code == 200 and 'name="confirm" value="yes"' in r.text
    assert "1 browser session" in r.text and "2 kubectl or application sessions" in r.text, re.sub(r"\s+", " ", r.text)[-1500:]
    assert signed_in(portal, person)
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf_of(r.text), "username": "adm-a", "confirm": "yes"},
                   allow_redirects=False)
    assert r.status_code == 303, r.status_code
    assert not signed_in(portal, person)
    assert_dead(refresh(portal, app["refresh_token"]))
    assert_dead(refresh_with(portal, kubectl_rt))
    assert signed_in(portal, admin)
    events = audit(portal, "admin.user.signout")
    assert any(e.get("actor") == "sess-admin" and e["details"].get("username") == "adm-a" and e["details"].get("sessions") == "1"
               and e["details"].get("families") == "2" for e in events), events
    # An unknown person: nothing, an error.
    r = admin.post(portal.base + "/admin/users/signout", data={"csrf": csrf, "username": "nobody-at-all", "confirm": "yes"},
                   allow_redirects=False)
    assert r.status_code == 303 and "nobody-at-all" not in str([e["details"] for e in audit(portal, "admin.user.signout")])


# ---------------------------------------------------------------------------------------------
# 4. The real kubectl


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_kubectl_stops_with_the_portals_message_after_the_family_is_ended(env, version):
    portal, standin = env
    user = add_user(portal, "kube-" + version.replace(".", "-"))
    s = login(portal, user)
    page = s.get(portal.base + "/kubernetes").text
    r = s.post(portal.base + "/kubernetes/kubeconfig", data={"csrf": csrf_of(page), "cluster": CLUSTER, "variant": "oidc"})
    assert r.status_code == 200
    k = Kubectl(version)
    with open(k.kubeconfig, "w") as f:
        f.write(r.text)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:" + user
    _, fams, page = devices(portal, s)
    row = [f for f in fams if "a kubeconfig download" in f["html"]]
    assert len(row) == 1, [f["html"] for f in fams]
    r = s.post(portal.base + "/devices/revoke", data={"csrf": csrf_of(page), "id": row[0]["id"]}, allow_redirects=False)
    assert r.status_code == 303
    notice = flash_text(s.get(portal.base + "/devices").text)
    assert "sign in again at " + portal.issuer + "/kubernetes" in notice, notice
    cfg = k.user_config()
    wait_for_refresh_window(cfg)
    r = k.run("get", "pods")
    assert r.returncode != 0
    assert "invalid_grant" in r.stderr, r.stderr
    assert "sign in again at " + portal.issuer + "/kubernetes" in r.stderr, r.stderr
