"""Shared helpers for the second-factor tests (issue 17): sign-in in two steps, TOTP enrollment and
codes (pyotp, computed independently of the portal), the OIDC code flow with PKCE, refresh, the
factors page, and the audit log. Generic on purpose: the TOTP, policy, API server and passkey tests
all use them."""
import base64
import hashlib
import html
import json
import re
import secrets
import time
import urllib.parse
from html.parser import HTMLParser

import pyotp
import requests

from conftest import CALLBACK

PASSWORD = "mfa-password-0123"
STEP = 30  # TOTP time step (RFC 6238 default; the portal's codes are 6 digits, 30 s)
WRONG_CODE_TEXT = "That code is not right"
LOCKED_TEXT = "Too many failed attempts"
EXPIRED_TEXT = "This sign-in has expired"


# ---------------------------------------------------------------------------------------------
# Pages and forms


def csrf(page_html):
    m = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert m, "no CSRF field on the page"
    return m.group(1)


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms, self._current = [], None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "attrs": a,
                             "inputs": [], "buttons": []}
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "textarea", "select"):
            self._current["inputs"].append(a)
        elif self._current is not None and tag == "button":
            self._current["buttons"].append(a)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def forms(page_html):
    """Every <form> of a page: {"action", "method", "attrs", "inputs": [attr dicts], "buttons": [attr dicts]}."""
    p = _Forms()
    p.feed(page_html)
    return p.forms


def form(page_html, action):
    """The first form posting to `action` (a path); AssertionError when there is none."""
    for f in forms(page_html):
        if urllib.parse.urlparse(html.unescape(f["action"])).path == action:
            return f
    raise AssertionError(f"no form with action={action!r} on the page: {[f['action'] for f in forms(page_html)]}")


def hidden_fields(f):
    return {i["name"]: i.get("value", "") for i in f["inputs"] if i.get("type", "").lower() == "hidden" and i.get("name")}


def text_of(page_html):
    """The page's visible text, whitespace collapsed (for 'contains this sentence' checks)."""
    t = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page_html, flags=re.S)
    t = html.unescape(re.sub(r"<[^>]+>", " ", t))
    return re.sub(r"\s+", " ", t).strip()


def is_login_redirect(r):
    return r.status_code in (302, 303) and r.headers.get("Location", "").startswith("/login")


def signed_in(p, s):
    """True when the browser's portal session works; False when the portal sends it to /login."""
    r = s.get(p.base + "/", allow_redirects=False)
    if r.status_code == 200:
        return True
    assert is_login_redirect(r), (r.status_code, r.headers)
    return False


def next_of(location):
    """The unquoted `next` parameter of a redirect like /step-up?next=%2Fadmin%2Fusers."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    return q.get("next", [None])[0]


# ---------------------------------------------------------------------------------------------
# People and the audit log


def add_user(p, name, password=PASSWORD, *extra, admin=False, groups=()):
    args = ["user", "add", name, "--password-stdin", *extra]
    for g in groups:
        args += ["--group", g]
    if admin:
        args.append("--admin")
    r = p.cli(*args, stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    return name


def audit(p, type_, limit=500):
    """Audit events of one type (newest first) as dicts, from `portal audit --json`."""
    r = p.cli("audit", "--type", type_, "--json", "--limit", str(limit))
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def audit_about(p, type_, username):
    """Events of `type_` that name `username` anywhere (actor, subject or details)."""
    return [e for e in audit(p, type_) if username in json.dumps(e)]


# ---------------------------------------------------------------------------------------------
# Sign-in


def login_password(p, user, password=PASSWORD, s=None, **fields):
    """GET /login, POST the password (plus `fields`: req, next). Returns (session, response) without
    following any redirect: 303 /login/factor when the person holds a factor."""
    s = s or requests.Session()
    page = s.get(p.base + "/login")
    assert page.status_code == 200, page.status_code
    r = s.post(p.base + "/login", data={"csrf": csrf(page.text), "username": user, "password": password, **fields},
               allow_redirects=False)
    return s, r


def submit_factor_code(p, s, code, path="/login/factor", **fields):
    """Opens the code page at `path` (/login/factor, /step-up?next=...), fills its form (hidden fields
    kept, `code` set, `fields` added) and posts it. Returns the response, redirects not followed."""
    page = s.get(p.base + path, allow_redirects=False)
    assert page.status_code == 200, (path, page.status_code, page.headers.get("Location"), page.text[:300])
    action = urllib.parse.urlparse(path).path
    f = form(page.text, action)
    data = hidden_fields(f)
    data.setdefault("csrf", csrf(page.text))
    data.update({"code": code, **fields})
    return s.post(p.base + action, data=data, allow_redirects=False)


def login_with_code(p, user, code, password=PASSWORD, s=None, **fields):
    """Password, then the second step with `code` (a TOTP or recovery code). Returns (session,
    response of the password POST, response of the code POST)."""
    s, first = login_password(p, user, password, s=s, **fields)
    assert first.status_code == 303 and first.headers["Location"] == "/login/factor", \
        (first.status_code, first.headers.get("Location"), first.text[:300])
    return s, first, submit_factor_code(p, s, code)


def login_with_totp(p, user, secret, password=PASSWORD, s=None, **fields):
    """A complete sign-in with password and a fresh TOTP code; asserts success and returns the session
    and the final response (303 to where /login would have gone)."""
    s, _, r = login_with_code(p, user, fresh_totp(secret), password, s=s, **fields)
    assert r.status_code == 303, (r.status_code, text_of(r.text)[:300])
    return s, r


# ---------------------------------------------------------------------------------------------
# TOTP (RFC 6238), computed with pyotp from the secret the page shows

_last_step = {}  # secret -> the highest step whose code a test has sent successfully


def totp_step(at=None):
    return int(at if at is not None else time.time()) // STEP


def totp_code(secret, step):
    return pyotp.TOTP(secret).at(step * STEP)


def seconds_left_in_step():
    return STEP - (time.time() % STEP)


def wait_for_totp_step(step):
    """Sleeps until the given step has begun (a little past its start)."""
    delay = step * STEP + 0.3 - time.time()
    if delay > 0:
        time.sleep(delay)


def wait_for_next_totp_step():
    wait_for_totp_step(totp_step() + 1)


def wait_for_margin(seconds=3.0):
    """Makes sure at least `seconds` remain in the current step (so a code keeps its offset)."""
    if seconds_left_in_step() < seconds:
        wait_for_next_totp_step()


def mark_totp_used(secret, step):
    _last_step[secret] = max(step, _last_step.get(secret, -1))


def last_totp_step(secret):
    return _last_step.get(secret, -1)


def fresh_totp(secret):
    """A code the portal must accept now: a step inside the ±1 window later than every step already
    used for this secret (a code is accepted once per step). Waits when none is left. Marks it used."""
    now = totp_step()
    step = max(now, last_totp_step(secret) + 1)
    if step > now + 1:
        wait_for_totp_step(step - 1)
    mark_totp_used(secret, step)
    return totp_code(secret, step)


def wrong_totp(secret):
    """Six digits that are no code of the window around now."""
    window = {totp_code(secret, totp_step() + d) for d in range(-3, 4)}
    for _ in range(100):
        c = f"{secrets.randbelow(10 ** 6):06d}"
        if c not in window:
            return c
    raise AssertionError("unreachable")


def totp_enrollment_page(p, s):
    """GET /account/factors/totp: (page, secret, enrollment form)."""
    page = s.get(p.base + "/account/factors/totp", allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    m = re.search(r'<code[^>]*id="totp-secret"[^>]*>\s*([^<]+?)\s*</code>', page.text)
    assert m, "no <code id=\"totp-secret\"> on the enrollment page"
    secret = re.sub(r"\s+", "", html.unescape(m.group(1)))
    return page, secret, form(page.text, "/account/factors/totp")


def post_totp_enrollment(p, s, page, code, name="phone"):
    f = form(page.text, "/account/factors/totp")
    data = hidden_fields(f)
    data.setdefault("csrf", csrf(page.text))
    data.update({"code": code, "name": name})
    return s.post(p.base + "/account/factors/totp", data=data, allow_redirects=False)


def totp_enroll(p, s, name="phone"):
    """Adds an authenticator app for the signed-in person: reads the secret from the page, confirms
    it with a pyotp code. Returns the base32 secret."""
    page, secret, _ = totp_enrollment_page(p, s)
    r = post_totp_enrollment(p, s, page, fresh_totp(secret), name=name)
    assert r.status_code == 303 and r.headers["Location"] == "/account/factors", (r.status_code, text_of(r.text)[:300])
    return secret


# ---------------------------------------------------------------------------------------------
# The factors page


def factors_page(p, s):
    r = s.get(p.base + "/account/factors", allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    return r.text


def factor_rows(page_html):
    """{factor id: row html} of the factors table."""
    return {m.group(1): m.group(2) for m in re.finditer(r'<tr[^>]*\bdata-factor-id="([^"]+)"[^>]*>(.*?)</tr>', page_html, re.S)}


def factor_id_named(page_html, name):
    ids = [i for i, row in factor_rows(page_html).items() if name in text_of(row)]
    assert len(ids) == 1, (name, factor_rows(page_html))
    return ids[0]


def recovery_left(page_html):
    """N from "N of 10 left" (id recovery-left), or None when the page says there are none."""
    m = re.search(r'id="recovery-left"[^>]*>(.*?)</', page_html, re.S)
    if not m:
        return None
    n = re.search(r"(\d+)\s+of\s+10\s+left", text_of(m.group(1)))
    return int(n.group(1)) if n else None


def factors_post(p, s, action, **fields):
    """POST one of the factors page's forms (/account/factors/rename, /remove, /recovery) with the page's CSRF."""
    page = s.get(p.base + "/account/factors", allow_redirects=False)
    token = csrf(page.text) if page.status_code == 200 else csrf(s.get(p.base + "/").text)
    return s.post(p.base + action, data={"csrf": token, **fields}, allow_redirects=False)


def recovery_codes(page_html):
    return [html.unescape(c).strip() for c in re.findall(r'<code[^>]*class="recovery-code"[^>]*>([^<]*)</code>', page_html)]


# ---------------------------------------------------------------------------------------------
# OIDC


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(jwt):
    """The payload of a JWT, not verified (the signature is the OIDC tests' business)."""
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def authorize(p, s, client="rp-public", scope="openid profile groups"):
    """GET /authorize (PKCE S256) in browser `s`. Returns (response, verifier): a signed-in browser gets
    302 to CALLBACK with a code, a signed-out one 302 to /login?req=..."""
    verifier = secrets.token_urlsafe(48)
    q = {"client_id": client, "redirect_uri": CALLBACK, "response_type": "code", "scope": scope,
         "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
         "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
    return s.get(p.base + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False), verifier


def code_of(location):
    assert location.startswith(CALLBACK + "?"), location
    q = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    assert "code" in q, location
    return q["code"][0]


def exchange_code(p, location, verifier, client="rp-public", secret=None):
    form_ = {"grant_type": "authorization_code", "code": code_of(location), "redirect_uri": CALLBACK,
             "code_verifier": verifier, "client_id": client}
    if secret:
        form_["client_secret"] = secret
    r = requests.post(p.base + "/token", data=form_, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def id_token_via_code_flow(p, s, client="rp-public", secret=None, scope="openid profile groups"):
    """Code flow + PKCE in a signed-in browser. Returns (id_token claims, token response)."""
    r, verifier = authorize(p, s, client, scope)
    assert r.status_code == 302 and r.headers["Location"].startswith(CALLBACK + "?"), \
        (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    tokens = exchange_code(p, r.headers["Location"], verifier, client, secret)
    return claims_of(tokens["id_token"]), tokens


def code_flow_with_login(p, user, code=None, password=PASSWORD, client="rp-public", secret=None, scope="openid profile groups"):
    """The whole relying-party sign-in in a new browser: /authorize → /login?req=… → (with `code`)
    /login/factor → CALLBACK. Returns (claims, token response, browser)."""
    s = requests.Session()
    r, verifier = authorize(p, s, client, scope)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?"), (r.status_code, r.headers.get("Location"))
    req = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["req"][0]
    s, r = login_password(p, user, password, s=s, req=req)
    if code is not None:
        assert r.status_code == 303 and r.headers["Location"] == "/login/factor", (r.status_code, r.headers.get("Location"))
        r = submit_factor_code(p, s, code)
    assert r.status_code == 303, (r.status_code, text_of(r.text)[:300])
    tokens = exchange_code(p, r.headers["Location"], verifier, client, secret)
    return claims_of(tokens["id_token"]), tokens, s


def refresh(p, refresh_token, client="rp-public", secret=None):
    form_ = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client}
    if secret:
        form_["client_secret"] = secret
    return requests.post(p.base + "/token", data=form_, timeout=10)


def assert_dead(r):
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (r.status_code, r.text)
