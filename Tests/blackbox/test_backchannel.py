"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0) against a real `portal serve` and a
relying party's endpoint played by a small HTTP server here: the logout token's signature and
claims, delivery outside the request path, retries on a 5xx, no redirects followed, and a
sign-in repeated in the same browser keeping the `sid` the application knows."""
import http.server
import json
import shutil
import threading
import time
import urllib.parse

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from conftest import CALLBACK, Portal, free_port
from test_hardening import csrf_of
from session_helpers import add_user, assert_dead, claims_of, code_flow, login, refresh, signed_in

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver:
    """An RP's back-channel endpoint: records every POST; answers with the statuses queued, then 200."""

    def __init__(self):
        self.port = free_port()
        self.posts, self.statuses, self.location = [], [], None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                outer.posts.append((self.path, self.headers.get("Content-Type"), body, time.time()))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                if 300 <= status < 400 and outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/backchannel"

    def wait(self, n, timeout=15):
        deadline = time.time() + timeout
        while len(self.posts) < n and time.time() < deadline:
            time.sleep(0.1)
        return self.posts

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def rp():
    r, elsewhere = Receiver(), Receiver()
    yield r, elsewhere
    r.stop()
    elsewhere.stop()


@pytest.fixture(scope="module")
def portal(rp):
    receiver, _ = rp
    p = Portal(extra_yaml=f"""  - id: rp-bc
    name: Back-channel app
    public: true
    redirect_uris: ["{CALLBACK}"]
    backchannel_logout_uri: "{receiver.url}"
""")
    yield p
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0


def sign_out(p, s, end="browser"):
    page = s.get(p.base + "/")
    r = s.post(p.base + "/logout", data={"csrf": csrf_of(page.text), "end": end}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login", (r.status_code, r.text[:300])


def audit(p, type_):
    r = p.cli("audit", "--type", type_, "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_signing_out_sends_a_signed_logout_token_to_the_application(portal, rp):
    receiver, _ = rp
    add_user(portal, "bc-a")
    s = login(portal, "bc-a")
    t = code_flow(portal, s, client="rp-bc")
    sid = claims_of(t["id_token"])["sid"]
    before = len(receiver.posts)
    started = time.time()
    sign_out(portal, s)
    assert time.time() - started < 2, "the sign-out waited for the application"
    posts = receiver.wait(before + 1)
    assert len(posts) == before + 1
    _, content_type, body, at = posts[-1]
    print(f"logout token delivered {at - started:.2f} s after the sign-out")
    assert content_type == "application/x-www-form-urlencoded"
    token = urllib.parse.parse_qs(body)["logout_token"][0]
    keys = KeySet.import_key_set(requests.get(portal.base + "/keys").json())
    verified = jose_jwt.decode(token, keys)
    assert verified.header["typ"] == "logout+jwt"
    c = verified.claims
    assert c["iss"] == portal.issuer and c["aud"] == "rp-bc" and c["sid"] == sid and c["sub"] == claims_of(t["id_token"])["sub"]
    assert c["events"] == {EVENT: {}} and "nonce" not in c and c["jti"] and c["exp"] > c["iat"] >= int(started) - 1
    # The application's own tokens died with the session, and the delivery is audited.
    assert_dead(refresh(portal, t["refresh_token"], client="rp-bc"))
    assert any(e["success"] and e["client_id"] == "rp-bc" and e["details"]["sid"] == sid for e in audit(portal, "logout.backchannel"))
    time.sleep(3)
    assert len(receiver.posts) == before + 1, "delivered once"


def test_a_failing_application_is_retried_and_a_redirect_is_never_followed(portal, rp):
    receiver, elsewhere = rp
    add_user(portal, "bc-b")
    s = login(portal, "bc-b")
    code_flow(portal, s, client="rp-bc")
    before = len(receiver.posts)
    receiver.statuses = [503]
    sign_out(portal, s)
    posts = receiver.wait(before + 2, timeout=20)
    assert len(posts) == before + 2, "a 503 is retried"
    assert posts[-1][3] - posts[-2][3] >= 1, "with a pause"

    # A 307 pointing elsewhere: the token is not re-sent there, and the refusal is audited.
    s = login(portal, "bc-b")
    code_flow(portal, s, client="rp-bc")
    receiver.location = elsewhere.url
    receiver.statuses = [307]
    before = len(receiver.posts)
    sign_out(portal, s)
    receiver.wait(before + 1)
    time.sleep(8)
    assert len(receiver.posts) == before + 1, "a redirect is a refusal: not retried"
    assert elsewhere.posts == [], "the logout token followed a redirect"
    assert any(not e["success"] and "307" in e["details"].get("error", "") for e in audit(portal, "logout.backchannel"))


def test_signing_in_again_in_the_same_browser_keeps_the_session_applications_know(portal, rp):
    receiver, _ = rp
    add_user(portal, "bc-c")
    s = login(portal, "bc-c")
    first = code_flow(portal, s, client="rp-bc")
    sid = claims_of(first["id_token"])["sid"]
    # The person signs in again in the same browser (an application asked for prompt=login, say).
    login(portal, "bc-c", s=s)
    assert signed_in(portal, s)
    second = code_flow(portal, s, client="rp-bc")
    assert claims_of(second["id_token"])["sid"] == sid, "the session continues"
    before = len(receiver.posts)
    sign_out(portal, s)
    posts = receiver.wait(before + 1)
    token = urllib.parse.parse_qs(posts[-1][2])["logout_token"][0]
    assert claims_of(token)["sid"] == sid
    assert_dead(refresh(portal, first["refresh_token"], client="rp-bc"))
    assert_dead(refresh(portal, second["refresh_token"], client="rp-bc"))


def test_another_person_signing_in_ends_the_previous_persons_session(portal, rp):
    receiver, _ = rp
    add_user(portal, "bc-d")
    add_user(portal, "bc-e")
    s = login(portal, "bc-d")
    t = code_flow(portal, s, client="rp-bc")
    before = len(receiver.posts)
    login(portal, "bc-e", s=s)
    assert claims_of(urllib.parse.parse_qs(receiver.wait(before + 1)[-1][2])["logout_token"][0])["sub"] == claims_of(t["id_token"])["sub"]
    assert_dead(refresh(portal, t["refresh_token"], client="rp-bc"))


def test_a_code_issued_before_the_sign_out_is_worthless_after_it(portal):
    import hashlib
    import secrets

    from session_helpers import b64url
    add_user(portal, "bc-f")
    s = login(portal, "bc-f")
    verifier = secrets.token_urlsafe(48)
    q = {"client_id": "rp-public", "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid",
         "state": "st", "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"}
    r = s.get(portal.base + "/authorize?" + urllib.parse.urlencode(q), allow_redirects=False)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]
    sign_out(portal, s)
    r = requests.post(portal.base + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                   "code_verifier": verifier, "client_id": "rp-public"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant" and "ended" in r.json()["error_description"], r.text
