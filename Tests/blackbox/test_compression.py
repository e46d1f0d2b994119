"""gzip through a real `portal serve`: pages and static files are compressed for clients that
accept it; nothing that holds a secret (the token endpoint, a credential shown once, a kubeconfig
download) ever is (BREACH), and the CSRF token is masked afresh in every response."""
import base64
import gzip
import hashlib
import os
import re
import secrets
import urllib.parse

import pytest
import requests

from conftest import CALLBACK

PASSWORD = "compression-password-1"
PUBLIC = os.path.join(os.path.dirname(__file__), "../../Sources/Assets/Public")


def raw_get(url, encoding, session=None, **kwargs):
    """The bytes on the wire (not decoded by requests) and the response."""
    r = (session or requests).get(url, headers={"Accept-Encoding": encoding}, stream=True, **kwargs)
    body = r.raw.read(decode_content=False)
    return r, body


def csrf_of(text):
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, "no CSRF field"
    return m.group(1)


@pytest.fixture(scope="module")
def user(portal):
    r = portal.cli("user", "add", "gzip-user", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    return "gzip-user"


def test_the_login_page_is_gzipped_for_clients_that_accept_it(portal):
    r, body = raw_get(portal.base + "/login?next=%2Fcredentials", "gzip")
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    assert int(r.headers["Content-Length"]) == len(body)
    page = gzip.decompress(body).decode()
    assert page.lower().lstrip().startswith("<!doctype html")
    assert 'name="csrf"' in page and "/credentials" in page
    assert r.headers["Cache-Control"] == "no-store"
    assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]

    plain, plain_body = raw_get(portal.base + "/login?next=%2Fcredentials", "identity")
    assert "Content-Encoding" not in plain.headers
    assert len(body) < len(plain_body)
    blank = lambda t: re.sub(r'name="csrf" value="[^"]+"', 'name="csrf" value=""', t)
    assert blank(plain_body.decode()) == blank(page)


def test_the_setup_page_with_its_one_time_token_is_never_gzipped(portal):
    r, body = raw_get(portal.setup_url, "gzip")
    assert r.status_code == 200 and len(body) >= 1024 and b'name="token"' in body
    assert "Content-Encoding" not in r.headers
    assert "x-portal-holds-secret" not in {k.lower() for k in r.headers}


@pytest.mark.parametrize("encoding", ["identity", "gzip;q=0", "gzip;q=0, *", "br", ""])
def test_no_gzip_unless_accepted(portal, encoding):
    r, body = raw_get(portal.base + "/login", encoding)
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers
    assert b'name="csrf"' in body


def test_static_files_are_gzipped(portal):
    with open(os.path.join(PUBLIC, "portal.css"), "rb") as f:
        css = f.read()
    r, body = raw_get(portal.base + "/static/portal.css", "gzip, deflate")
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"].startswith("text/css")
    assert "Accept-Encoding" in r.headers["Vary"]
    assert gzip.decompress(body) == css
    # requests decodes it like a browser would.
    assert requests.get(portal.base + "/static/portal.css").content == css
    # HEAD is never gzipped (the portal routes no HEAD here; whatever the answer, it is not encoded).
    head = requests.head(portal.base + "/static/portal.css", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in head.headers
    plain, body = raw_get(portal.base + "/static/portal.css", "identity")
    assert "Content-Encoding" not in plain.headers and body == css


def test_the_token_response_and_secrets_shown_once_are_never_gzipped_but_pages_are(portal, user):
    s = requests.Session()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({"response_type": "code", "client_id": "rp-public", "redirect_uri": CALLBACK,
                                    "scope": "openid profile email groups offline_access", "state": "st", "nonce": "nn",
                                    "code_challenge": challenge, "code_challenge_method": "S256"})
    r = s.get(portal.base + "/authorize?" + query, allow_redirects=False)
    assert r.status_code == 302, r.text
    login = urllib.parse.urljoin(portal.base, r.headers["Location"])
    req = urllib.parse.parse_qs(urllib.parse.urlparse(login).query)["req"][0]
    page = s.get(login, headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("Content-Encoding") == "gzip"
    r = s.post(portal.base + "/login", data={"csrf": csrf_of(page.text), "req": req, "username": user, "password": PASSWORD},
               allow_redirects=False)
    assert r.status_code == 303, r.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["Location"]).query)["code"][0]

    r = requests.post(portal.base + "/token", headers={"Accept-Encoding": "gzip, deflate, *"}, stream=True,
                      data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                            "client_id": "rp-public", "code_verifier": verifier})
    body = r.raw.read(decode_content=False)
    assert r.status_code == 200, body
    assert len(body) >= 1024, "big enough that it would be gzipped were it not no-store"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Content-Encoding" not in r.headers
    assert b'"refresh_token"' in body

    for path in ["/", "/credentials"]:
        r, body = raw_get(portal.base + path, "gzip", session=s)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", path
        assert r.headers["Content-Encoding"] == "gzip", path
        assert b'name="csrf"' in gzip.decompress(body), path
    # A new credential's token is shown once, from a page that is never compressed.
    csrf = csrf_of(s.get(portal.base + "/credentials").text)
    r = s.post(portal.base + "/credentials", data={"csrf": csrf, "name": "gz", "expires": "86400"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/")
    r, body = raw_get(portal.base + r.headers["Location"], "gzip", session=s)
    assert r.status_code == 200 and b"kpc_" in body and len(body) >= 1024
    assert "Content-Encoding" not in r.headers and "x-portal-holds-secret" not in {k.lower() for k in r.headers}


def test_the_csrf_token_differs_in_every_response_and_each_one_works(portal, user):
    s = requests.Session()
    tokens = [csrf_of(s.get(portal.base + "/login").text) for _ in range(3)]
    assert len(set(tokens)) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{86}", t) for t in tokens)
    r = s.post(portal.base + "/login", data={"csrf": tokens[0] + "A", "username": user, "password": PASSWORD},
               allow_redirects=False)
    assert r.status_code == 403
    r = s.post(portal.base + "/login", data={"csrf": tokens[0], "username": user, "password": PASSWORD},
               allow_redirects=False)
    assert r.status_code == 303, r.text
