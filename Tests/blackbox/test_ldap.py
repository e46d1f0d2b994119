"""LDAP logins against a real slapd started here (ldap_fixture): search and bind, groups (nested),
RFC 4515 escaping, TLS (StartTLS, LDAPS, wrong CA), failover, timeouts, and the re-check on refresh."""
import base64
import hashlib
import json
import re
import secrets
import shutil
import time
import urllib.parse

import pytest
import requests

import ldap_fixture as L
from conftest import CALLBACK, Portal


def ldap_yaml(urls, extra="", groups=None, tls=""):
    urls_yaml = "\n".join(f"    - {u}" for u in urls)
    groups = groups or f"""  groups:
    mode: search
    base_dn: {L.GROUPS}
    filter: (&(objectClass=groupOfNames)(member={{dn}}))
    nested_depth: 2
"""
    return f"""ldap:
  urls:
{urls_yaml}
{tls}  bind_dn: {L.SERVICE_DN}
  bind_password_env: LDAP_BIND_PASSWORD
  user_search:
    base_dn: {L.SUFFIX}
    filter: (objectClass=inetOrgPerson)
    username_attribute: uid
{groups}  account_state:
    disabled_attribute: pwdAccountLockedTime
  timeouts:
    connect: 1s
    operation: 1s
  retry_after: 30s
  cache_lifetime: 0s
{extra}"""


class LDAPPortal(Portal):
    def __init__(self, urls, **kw):
        import os
        os.environ["LDAP_BIND_PASSWORD"] = L.SERVICE_PW
        super().__init__(extra_yaml=ldap_yaml(urls, **kw))


def stop(p):
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0


@pytest.fixture(scope="module")
def slapd():
    s = L.Slapd()
    yield s
    s.close()


@pytest.fixture(scope="module")
def portal(slapd):
    p = LDAPPortal([slapd.url])
    yield p
    stop(p)


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the form"
    return m.group(1)


def post_login(portal, username, password, session=None, req=None):
    s = session or requests.Session()
    page = s.get(portal.issuer + "/login" + (f"?req={req}" if req else ""))
    assert page.status_code == 200
    data = {"csrf": csrf_of(page.text), "username": username, "password": password}
    if req:
        data["req"] = req
    return s.post(portal.issuer + "/login", data=data, allow_redirects=False)


def code_flow(portal, username, password):
    """Authorization code + PKCE with the public client; returns the token response."""
    s = requests.Session()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = {"response_type": "code", "client_id": "rp-public", "redirect_uri": CALLBACK,
         "scope": "openid profile email groups offline_access", "state": "st", "nonce": "n",
         "code_challenge": challenge, "code_challenge_method": "S256"}
    r = s.get(portal.issuer + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False)
    assert r.status_code == 302, r.text
    req = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["req"][0]
    r = post_login(portal, username, password, session=s, req=req)
    assert r.status_code == 303, r.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    t = requests.post(portal.issuer + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                      "client_id": "rp-public", "code_verifier": verifier})
    assert t.status_code == 200, t.text
    return t.json()


def refresh(portal, token):
    return requests.post(portal.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                         "client_id": "rp-public"})


def claims(id_token):
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def entry_uuid(slapd, uid):
    out = slapd.search(f"uid={uid},{L.PEOPLE}", "(objectClass=*)", "entryUUID")
    return re.search(r"entryUUID: (\S+)", out).group(1)


def binds_as(slapd, uid):
    return slapd.log().count(f'BIND dn="uid={uid},{L.PEOPLE}"')


# --- Login --------------------------------------------------------------------------------------

def test_directory_login_gives_stable_subject_profile_and_nested_groups(portal, slapd):
    t = code_flow(portal, "alice", L.PASSWORDS["alice"])
    c = claims(t["id_token"])
    assert c["sub"] == entry_uuid(slapd, "alice")
    assert c["preferred_username"] == "alice"
    assert c["name"] == "Alice Liddell"
    assert c["email"] == "alice@example.org" and c["email_verified"] is True
    # dev and ops directly; platform through ops, staff through platform (nested_depth 2).
    assert sorted(c["groups"]) == ["dev", "ops", "platform", "staff"]


def test_login_name_is_trimmed_and_case_folded(portal):
    r = post_login(portal, "  ALICE ", L.PASSWORDS["alice"])
    assert r.status_code == 303
    home = requests.get(portal.issuer + "/", cookies=r.cookies)
    assert "alice" in home.text


def test_wrong_password_is_refused(portal):
    r = post_login(portal, "alice", L.PASSWORDS["alice"] + "x")
    assert r.status_code == 401 and "Incorrect username or password" in r.text


def test_empty_and_whitespace_passwords_are_refused_before_any_bind(portal, slapd):
    # erin: a login that succeeds first clears her failure count, so four refusals stay under the lockout.
    assert post_login(portal, "erin", L.PASSWORDS["erin"]).status_code == 303
    time.sleep(0.2)
    before = binds_as(slapd, "erin")
    for pw in ["", " ", "\t \n", "\u00a0"]:
        r = post_login(portal, "erin", pw)
        assert r.status_code == 401, repr(pw)
    time.sleep(0.2)
    assert binds_as(slapd, "erin") == before
    assert post_login(portal, "erin", L.PASSWORDS["erin"]).status_code == 303


@pytest.mark.parametrize("username", ["*", "*)(uid=*", "x)(|(objectClass=*", "alice\x00", "ali\x00ce", "a*",
                                      f"uid=alice,{L.PEOPLE}", "(uid=alice)"])
def test_filter_injection_and_whole_dn_usernames_log_nobody_in(portal, slapd, username):
    r = post_login(portal, username, L.PASSWORDS["alice"])
    # A NUL never gets past the form parser (a 400 page); the rest reach the directory escaped.
    assert r.status_code == (400 if "\x00" in username else 401), r.text
    assert "Set-Cookie" not in r.headers or "portal_session" not in r.headers.get("Set-Cookie", "")


def test_filter_specials_reach_the_directory_escaped(portal, slapd):
    post_login(portal, "*)(uid=*", "whatever-password")
    time.sleep(0.2)
    log = slapd.log()
    assert r"(uid=\2A\29\28uid=\2A)" in log
    assert "(uid=*)" not in log


def test_password_with_filter_specials_and_non_ascii_letters_works_as_typed(portal):
    assert post_login(portal, "bob", L.PASSWORDS["bob"]).status_code == 303
    # Normalised or trimmed variants are different passwords.
    assert post_login(portal, "bob", L.PASSWORDS["bob"] + " ").status_code == 401


def test_a_username_matching_two_entries_is_refused(portal):
    r = post_login(portal, "twin", L.PASSWORDS["twin"])
    assert r.status_code == 401


# --- Local and directory users side by side -------------------------------------------------------

def test_a_directory_account_under_a_local_accounts_name_is_refused(portal, slapd):
    """Two people never share one Kubernetes name: a local account's name shadows the directory's."""
    # Directory frank signs in while no local frank exists, and holds a refresh token.
    before = code_flow(portal, "frank", L.PASSWORDS["frank"])
    assert claims(before["id_token"])["sub"] == entry_uuid(slapd, "frank")
    # An administrator then creates a local frank.
    r = portal.cli("user", "add", "frank", "--password-stdin", "--group", "local-only", stdin="local-frank-password\n")
    assert r.returncode == 0, r.stderr
    local = code_flow(portal, "frank", "local-frank-password")
    assert claims(local["id_token"])["groups"] == ["local-only"]
    # Directory frank's next refresh is refused (and his family revoked) …
    r = refresh(portal, before["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    # … and his next sign-in, with the right directory password, is refused with the reason.
    r = post_login(portal, "frank", L.PASSWORDS["frank"])
    assert r.status_code == 403 and "same name as a local account" in r.text, r.status_code
    assert "portal_session" not in r.headers.get("Set-Cookie", "")
    events = [json.loads(line) for line in portal.cli("audit", "--type", "login.failure", "--json").stdout.splitlines()]
    assert any(e["actor"] == "frank" and "local account" in e["details"].get("reason", "") for e in events)
    successes = [json.loads(line) for line in portal.cli("audit", "--type", "login.success", "--json").stdout.splitlines()]
    assert {e["details"]["method"] for e in successes if e["actor"] == "frank"} == {"password", "ldap"}, "ldap only before the local account"


# --- Re-check on refresh -----------------------------------------------------------------------

def test_disabled_in_the_directory_refresh_refused_and_family_revoked(portal, slapd):
    t = code_flow(portal, "carol", L.PASSWORDS["carol"])
    r = refresh(portal, t["refresh_token"])
    assert r.status_code == 200, r.text
    rt = r.json()["refresh_token"]
    slapd.ldapmodify(f"dn: uid=carol,{L.PEOPLE}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
    r = refresh(portal, rt)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # Unlocking does not bring the family back: it was revoked.
    slapd.ldapmodify(f"dn: uid=carol,{L.PEOPLE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n")
    r = refresh(portal, rt)
    assert r.status_code == 400
    audit = portal.cli("audit", "--type", "token.refresh", "--json").stdout
    assert "account disabled or deleted" in audit


def test_locked_account_cannot_log_in(portal, slapd):
    slapd.ldapmodify(f"dn: uid=carol,{L.PEOPLE}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
    try:
        assert post_login(portal, "carol", L.PASSWORDS["carol"]).status_code == 401
    finally:
        slapd.ldapmodify(f"dn: uid=carol,{L.PEOPLE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n")
    assert post_login(portal, "carol", L.PASSWORDS["carol"]).status_code == 303


def test_deleted_from_the_directory_refresh_refused(portal, slapd):
    t = code_flow(portal, "dave", L.PASSWORDS["dave"])
    slapd.ldapdelete(f"uid=dave,{L.PEOPLE}")
    r = refresh(portal, t["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_removed_from_a_group_the_next_id_token_shows_it(portal, slapd):
    t = code_flow(portal, "erin", L.PASSWORDS["erin"])
    assert sorted(claims(t["id_token"])["groups"]) == ["dev", "ops", "platform", "staff"]
    slapd.ldapmodify(f"dn: cn=ops,{L.GROUPS}\nchangetype: modify\ndelete: member\nmember: uid=erin,{L.PEOPLE}\n")
    r = refresh(portal, t["refresh_token"])
    assert r.status_code == 200, r.text
    assert claims(r.json()["id_token"])["groups"] == ["dev"]


def test_session_ends_when_the_directory_disables_the_account(portal, slapd):
    r = post_login(portal, "bob", L.PASSWORDS["bob"])
    assert r.status_code == 303
    cookies = r.cookies
    assert "bob" in requests.get(portal.issuer + "/", cookies=cookies).text
    slapd.ldapmodify(f"dn: uid=bob,{L.PEOPLE}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
    try:
        home = requests.get(portal.issuer + "/", cookies=cookies, allow_redirects=False)
        assert "Bob" not in home.text
    finally:
        slapd.ldapmodify(f"dn: uid=bob,{L.PEOPLE}\nchangetype: modify\ndelete: pwdAccountLockedTime\n")


# --- Other configurations: anonymous search, memberOf, TLS, failover, timeouts -------------------

def test_anonymous_search_with_member_of_attribute_and_depth_bound(slapd):
    groups = """  groups:
    mode: attribute
    member_of_attribute: memberOf
    nested_depth: 1
    prefix: "ldap:"
"""
    p = Portal(extra_yaml=ldap_yaml([slapd.url], groups=groups).replace(f"  bind_dn: {L.SERVICE_DN}\n  bind_password_env: LDAP_BIND_PASSWORD\n", ""))
    try:
        c = claims(code_flow(p, "alice", L.PASSWORDS["alice"])["id_token"])
        # staff is two levels up: beyond nested_depth 1.
        assert sorted(c["groups"]) == ["ldap:dev", "ldap:ops", "ldap:platform"]
    finally:
        stop(p)


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_tls_with_the_test_ca_works_and_a_wrong_ca_is_refused(slapd, mode):
    url = slapd.ldaps_url if mode == "ldaps" else slapd.url
    start_tls = "true" if mode == "starttls" else "false"
    good = LDAPPortal([url], tls=f"  start_tls: {start_tls}\n  ca_file: {slapd.ca_file}\n")
    bad = LDAPPortal([url], tls=f"  start_tls: {start_tls}\n  ca_file: {slapd.wrong_ca_file}\n")
    try:
        assert post_login(good, "alice", L.PASSWORDS["alice"]).status_code == 303
        r = post_login(bad, "alice", L.PASSWORDS["alice"])
        assert r.status_code == 503 and "Sign-in is unavailable" in r.text
    finally:
        stop(good)
        stop(bad)
    if mode == "starttls":
        # The service bind went over TLS: no clear-text bind of the service account reached the plain port
        # after StartTLS was requested ("EXT oid=1.3.6.1.4.1.1466.20037" precedes every BIND of this run).
        assert "1.3.6.1.4.1.1466.20037" in slapd.log()


def test_insecure_skip_verify_connects_but_warns_at_every_start(slapd):
    p = LDAPPortal([slapd.ldaps_url], tls=f"  insecure_skip_verify: true\n")
    try:
        assert post_login(p, "alice", L.PASSWORDS["alice"]).status_code == 303
        assert "insecure_skip_verify is on" in p.logs()
        assert L.SERVICE_PW not in p.logs()
    finally:
        stop(p)


def test_first_server_down_second_is_used(slapd):
    p = LDAPPortal([L.closed_port_url(), slapd.url])
    try:
        started = time.time()
        assert post_login(p, "alice", L.PASSWORDS["alice"]).status_code == 303
        assert time.time() - started < 3
        # The failed server is skipped now: the next login does not try it again.
        started = time.time()
        assert post_login(p, "alice", L.PASSWORDS["alice"]).status_code == 303
        assert "LDAP server failed" in p.logs()
    finally:
        stop(p)


def test_every_server_down_shows_the_unavailable_page_and_writes_nothing_else(slapd):
    p = LDAPPortal([L.closed_port_url(), L.closed_port_url()])
    try:
        for _ in range(7):     # more than max_failures_per_user: an outage must not lock anyone out
            r = post_login(p, "alice", L.PASSWORDS["alice"])
            assert r.status_code == 503, r.text
            assert "Sign-in is unavailable" in r.text and "Nothing was changed" in r.text
        events = [json.loads(line) for line in p.cli("audit", "--type", "login.failure", "--json").stdout.splitlines()]
        assert events and all(e["details"].get("reason") == "directory unavailable" for e in events)
    finally:
        stop(p)


def test_a_server_that_accepts_but_never_answers_times_out(slapd):
    silent = L.SilentServer()
    alone = LDAPPortal([silent.url])
    with_fallback = LDAPPortal([silent.url, slapd.url])
    try:
        started = time.time()
        r = post_login(alone, "alice", L.PASSWORDS["alice"])
        elapsed = time.time() - started
        assert r.status_code == 503 and "Sign-in is unavailable" in r.text
        assert elapsed < 4, elapsed          # operation timeout 1s, never the OS's minutes
        started = time.time()
        assert post_login(with_fallback, "alice", L.PASSWORDS["alice"]).status_code == 303
        assert time.time() - started < 4
    finally:
        stop(alone)
        stop(with_fallback)
        silent.close()


def test_check_config_reports_ldap_problems_with_locations(tmp_path):
    import subprocess
    from conftest import PORTAL_BIN
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("""ldap:
  urls: ["http://ldap.example.org"]
  bind_dn: cn=portal,dc=example,dc=org
  user_search:
    scope: everything
  groups:
    filter: (member=x)
  cache_lifetime: 5m
  timeoutz: {}
""")
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", str(cfg)], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"{cfg}:2:" in out and "the scheme must be ldap or ldaps" in out
    assert "ldap.bind_dn" in out and "bind_password_file or bind_password_env" in out
    assert "ldap.user_search.scope" in out and "must be one of base, one, sub" in out
    assert "ldap.groups.filter" in out and "{dn} or {username}" in out
    assert "ldap.cache_lifetime" in out and "id_token_lifetime" in out
    assert "did you mean 'timeouts'" in out


def test_an_administrator_sees_a_directory_person_on_a_page_of_their_own(portal, slapd):
    r = portal.cli("user", "add", "ldap-page-admin", "--admin", "--password-stdin", stdin="ldap-page-admin-password\n")
    assert r.returncode == 0, r.stderr
    carol = requests.Session()
    assert post_login(portal, "carol", L.PASSWORDS["carol"], session=carol).status_code == 303  # a browser session
    code_flow(portal, "carol", L.PASSWORDS["carol"])                                             # and a refresh family
    admin = requests.Session()
    assert post_login(portal, "ldap-page-admin", "ldap-page-admin-password", session=admin).status_code == 303
    page = admin.get(portal.issuer + "/admin/users/Carol")
    assert page.status_code == 200, page.text
    text = page.text
    assert "directory (LDAP)" in text and entry_uuid(slapd, "carol") in text
    assert "In the browser (portal sessions)" in text and ">ldap<" in text   # the portal session, by method
    assert "/admin/sessions/revoke" in text                                  # the kubectl/application sign-in, endable
    # Changed in the directory, not here: no local-account actions.
    for action in ("disable", "delete", "promote", "password"):
        assert f'action="/admin/users/{action}"' not in text, action
    assert admin.get(portal.issuer + "/admin/users/nobody-in-either").status_code == 404
