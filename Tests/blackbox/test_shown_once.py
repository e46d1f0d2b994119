"""Secrets shown once and notices carried across a redirect, attacked over plain HTTP.

A new credential's token is stored sealed, keyed by a cookie only the creating browser holds, and
bound to that browser and person: another person (even one who learns the id and forges the
cookie) gets "Already shown" and cannot use it up for its owner; sign-out drops an unseen one.
The notice after a redirect (`portal_flash`) is signed over the browser id and its time: it shows
only in the browser it was made for, and a tampered one shows nothing."""
import base64
import re
import secrets

import requests

from test_hardening import PASSWORD, add_user, csrf_of, login

COOKIE = "portal_reveal"


def create(p, s, name):
    csrf = csrf_of(s.get(p.base + "/credentials").text)
    r = s.post(p.base + "/credentials", data={"csrf": csrf, "name": name, "expires": "86400"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), r.status_code
    assert "kpc_" not in r.headers["Location"] and "kpc_" not in r.text
    return r.headers["Location"]


def test_only_its_owner_sees_a_secret_and_only_once(portal):
    add_user(portal, "owner-a")
    add_user(portal, "mallory-a")
    alice = login(portal, "owner-a")
    shown = create(portal, alice, "ci")
    mallory = login(portal, "mallory-a")
    rid = shown.rsplit("/", 1)[1]
    forged = rid + "." + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    mallory.cookies.set(COOKIE, forged, domain="127.0.0.1", path="/")
    r = mallory.get(portal.base + shown)
    assert r.status_code == 410 and "kpc_" not in r.text
    # The owner's cookie in another person's session: still nothing (bound to browser and person).
    mallory.cookies.set(COOKIE, alice.cookies.get(COOKIE), domain="127.0.0.1", path="/")
    r = mallory.get(portal.base + shown)
    assert r.status_code == 410 and "kpc_" not in r.text
    # Nothing was used up: the owner sees it, once.
    r = alice.get(portal.base + shown)
    assert r.status_code == 200 and re.search(r"kpc_[A-Za-z0-9_]+", r.text)
    assert r.headers["Cache-Control"] == "no-store"
    again = alice.get(portal.base + shown)
    assert again.status_code == 410 and "kpc_" not in again.text and "Already shown" in again.text


def test_sign_out_drops_a_secret_not_yet_seen(portal):
    add_user(portal, "owner-b")
    s = login(portal, "owner-b")
    shown = create(portal, s, "unseen")
    csrf = csrf_of(s.get(portal.base + "/credentials").text)
    r = s.post(portal.base + "/logout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status_code == 303
    assert any(c.startswith(COOKIE + "=;") and "Max-Age=0" in c for c in r.raw.headers.getlist("Set-Cookie")), r.headers
    login(portal, "owner-b", s=s)
    assert s.get(portal.base + shown).status_code == 410


def test_a_notice_shows_only_in_the_browser_it_was_made_for(portal):
    add_user(portal, "owner-c")
    add_user(portal, "mallory-c")
    s = login(portal, "owner-c")
    csrf = csrf_of(s.get(portal.base + "/credentials").text)
    r = s.post(portal.base + "/credentials", data={"csrf": csrf, "name": "x", "expires": "86400", "group": "not-mine"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/credentials"
    flash = r.cookies.get("portal_flash")
    assert flash
    # Its own browser: shown once, then gone.
    page = s.get(portal.base + "/credentials").text
    assert "Not a group of the owner: not-mine" in page
    assert "not-mine" not in s.get(portal.base + "/credentials").text
    # Replayed into another browser: not shown.
    m = login(portal, "mallory-c")
    m.cookies.set("portal_flash", flash, domain="127.0.0.1", path="/")
    assert "not-mine" not in m.get(portal.base + "/credentials").text
    # Tampered text: not shown either.
    issued, payload, mac = flash.split(".")
    forged = base64.urlsafe_b64encode(b'{"e":"Your account is compromised: call 555-0100"}').rstrip(b"=").decode()
    s.cookies.set("portal_flash", ".".join([issued, forged, mac]), domain="127.0.0.1", path="/")
    assert "555-0100" not in s.get(portal.base + "/credentials").text
    s.cookies.set("portal_flash", "garbage", domain="127.0.0.1", path="/")
    assert s.get(portal.base + "/credentials").status_code == 200


def test_a_refused_change_is_a_redirect_so_a_reload_sends_nothing(portal):
    add_user(portal, "owner-d")
    s = login(portal, "owner-d")
    csrf = csrf_of(s.get(portal.base + "/credentials").text)
    r = s.post(portal.base + "/credentials", data={"csrf": csrf, "name": "", "expires": "86400"}, allow_redirects=False)
    assert r.status_code == 303
    assert "Give the credential a name" in s.get(portal.base + r.headers["Location"]).text
    assert PASSWORD not in r.text
