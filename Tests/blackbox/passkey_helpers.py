"""Shared by the passkey tests (issue 17): test_passkeys_browser.py (real Chromium),
test_passkeys_refusals.py (the software authenticator: algorithms, options, refusals) and
test_passkeys_fuzz.py (malformed credentials). People, the requests "browser" (`Web`), registering
and signing in with a softauthn.SoftAuthn (alone or as the second factor), tokens and their amr,
the audit log, and the portal's crash check.

Each test module starts its portals with its own fixtures (`finish_portal` is their teardown)."""
import hashlib
import json
import re
import secrets
import shutil
import urllib.parse

import requests

import softauthn as sa
from conftest import CALLBACK
from test_hardening import csrf_of

PW = "a-person-password-for-passkeys"
RP_ID = "localhost"
CRASH_MARKS = ("Fatal error", "fatalError", "Swift runtime failure", "Illegal instruction", "Segmentation fault",
               "Stack dump", "SIGSEGV", "SIGILL", "SIGTRAP", "precondition failed", "Assertion failed")


# ---------------------------------------------------------------------------------------------
# Portals


def finish_portal(p):
    """A module fixture's teardown: SIGTERM shuts the portal down cleanly, and its log shows no crash."""
    assert p.stop() == 0, "portal did not shut down cleanly on SIGTERM"
    assert_no_crash(p)
    shutil.rmtree(p.dir, ignore_errors=True)


def assert_no_crash(p):
    logs = p.logs()
    for mark in CRASH_MARKS:
        assert mark not in logs, f"the portal's log shows a crash ({mark}):\n{logs[-3000:]}"
    for line in logs.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert not str(entry.get("status", "")).startswith("5"), f"a 5xx answer: {line}"
            assert entry.get("level") != "critical", line


# ---------------------------------------------------------------------------------------------
# Helpers: people, pages, tokens

_names = iter(range(1, 1_000_000))


def add_user(p, prefix="person", password=PW):
    name = f"{prefix}{next(_names)}"
    r = p.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    return name


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
