"""The admin UI at the size of a company (issue 18): 5,000 people and 500 robots, seeded straight
into the portal's SQLite database, browsed in headless Chromium with axe-core: search, pages,
a person's own page, every page small. Page weight and time to first byte at this size are
printed by bench/pages.sh (SEED=5000)."""
import sqlite3
import tempfile
import time
import uuid

import pytest
import requests

from conftest import Portal
from test_hardening import csrf_of
from test_ui_browser import UI, sign_in

ADMIN, ADMIN_PW = "scale-admin", "scale-admin-password-1"
PEOPLE, ROBOTS = 5000, 500


def seed(db_path, people=PEOPLE, robots=ROBOTS):
    """Rows as the portal writes them (schema 1 columns); one transaction, a fixed unusable hash."""
    now = int(time.time())
    con = sqlite3.connect(db_path, timeout=30)
    with con:
        con.executemany(
            "INSERT INTO users (id, username, display_name, email, email_verified, groups_json, is_admin, disabled, password_hash, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, 0, 0, NULL, ?, ?)",
            [(str(uuid.uuid4()), f"person-{i:05d}", f"Person {i:05d}", f"person-{i:05d}@corp.example",
              f'["team-{i % 40:02d}","everyone"]', now, now) for i in range(people)])
        con.executemany(
            "INSERT INTO robots (id, name, team, description, groups_json, disabled, created_at, created_by) VALUES (?, ?, ?, ?, ?, 0, ?, 'seed')",
            [(str(uuid.uuid4()), f"bot-{i:04d}", f"team-{i % 40:02d}", f"robot {i}", '["deployers"]', now) for i in range(robots)])
    con.close()


def robot_columns(db_path):
    con = sqlite3.connect(db_path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(robots)")]
    con.close()
    return cols


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    portal = Portal()
    r = portal.cli("user", "add", ADMIN, "--admin", "--password-stdin", stdin=ADMIN_PW + "\n")
    assert r.returncode == 0, r.stderr
    db = f"{portal.dir}/data/portal.sqlite"
    assert {"id", "name", "team", "description", "groups_json", "disabled", "created_at", "created_by"} <= set(robot_columns(db))
    seed(db)
    ui = UI(portal, str(tmp_path_factory.mktemp("chromium-scale")), tempfile.mkdtemp(prefix="portal-ui-scale-"))
    ui.get("/login")
    sign_in(ui, ADMIN, ADMIN_PW)
    yield portal, ui
    ui.quit()
    assert portal.stop() == 0


def size_of(ui):
    return ui.driver.execute_script("return document.documentElement.outerHTML.length")


def test_the_users_page_pages_and_searches_five_thousand_people(env):
    portal, ui = env
    ui.get("/admin/users")
    assert "1–50 of 5001" in ui.css(".pager").text
    assert len(ui.all("tbody tr")) == 50 and size_of(ui) < 60_000
    assert not ui.all("tbody input[type=password]") and not ui.all("tbody form"), "no per-row password field or buttons"
    ui.check("scale-users")
    ui.click_and_wait(ui.css(".pager a[rel=next]"))
    assert "51–100 of 5001" in ui.css(".pager").text and ui.css(".pager a[rel=prev]")
    # Search: by name, by email, by group; literal text.
    for query, count in [("person-04999", 1), ("04999@corp", 1), ("team-07", 125), ("%", 0)]:
        ui.get("/admin/users")
        ui.fill({"#q-q": query})
        ui.submit("form.filterbar button[type=submit]")
        rows = ui.all("tbody tr")
        if count == 0:
            assert not rows and "Nobody matches" in ui.css("main").text
        else:
            assert f"of {count}" in ui.css(".pager").text, (query, ui.css(".pager").text)
            assert len(rows) == min(count, 50)
    ui.check("scale-users-search")


def test_a_person_has_a_page_of_their_own(env):
    portal, ui = env
    ui.get("/admin/users?q=person-01234")
    ui.click_and_wait(ui.css("tbody a[href='/admin/users/person-01234']"))
    assert ui.heading() == "person-01234"
    text = ui.css("main").text
    assert "team-34" in text and "local account without a password (Kerberos only)" in text
    assert "No kubectl or application sign-ins." in text
    for action in ("disable", "promote", "password", "delete"):
        assert ui.all(f"form[action='/admin/users/{action}']"), action
    ui.check("scale-person")
    # Disabled from its page, asked first; back on the same page with the audit trail.
    ui.submit("form[action='/admin/users/disable'] button[type=submit]")
    ui.submit("main form input[name=confirm][value=yes] ~ .actions-row button[type=submit]")
    assert ui.path() == "/admin/users/person-01234" and "disabled" in ui.css("dl.facts").text
    assert "admin.user.disable" in ui.css("main").text
    # What was done to them (by someone else), in the audit log by subject.
    ui.click_and_wait(ui.css("a[href^='/admin/audit?subject=']"))
    rows = ui.all("tbody tr")
    assert rows and all("person-01234" in r.text for r in rows) and any("admin.user.disable" in r.text for r in rows)


def test_robots_page_and_search_at_five_hundred(env):
    _, ui = env
    ui.get("/admin/robots")
    assert "1–50 of 500" in ui.css(".pager").text and len(ui.all("tbody tr")) == 50 and size_of(ui) < 100_000
    ui.get("/admin/robots?q=team-03")
    assert "of 13" in ui.css(".pager").text  # bots 3, 43, 83, … 483
    ui.check("scale-robots")


def test_a_deep_page_of_a_search_is_one_page_of_html(env):
    """Page 20 of a search over plain HTTP: the right slice, and one page's worth of bytes."""
    portal, ui = env
    s = requests.Session()
    page = s.get(portal.base + "/login")
    s.post(portal.base + "/login", data={"csrf": csrf_of(page.text), "username": ADMIN, "password": ADMIN_PW})
    r = s.get(portal.base + "/admin/users?q=person-0&page=20")
    assert r.status_code == 200 and "951–1000 of 5000" in r.text
    assert len(r.content) < 60_000
    # A page number from the request is bounded (it once overflowed and killed the process).
    for path in ["/admin/users", "/admin/robots"]:
        for page in ["9223372036854775807", "-9223372036854775808", "99999999999999999999", "x"]:
            r = s.get(portal.base + f"{path}?page={page}")
            assert r.status_code == 200, (path, page, r.status_code)
    assert s.get(portal.base + "/healthz").status_code == 200
