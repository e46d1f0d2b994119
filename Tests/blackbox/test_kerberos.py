"""Kerberos (SPNEGO) logins against a real MIT KDC started here: curl --negotiate through a whole
authorization-code flow, headless Chromium reaching the Kubernetes page without typing, and the
ways a Negotiate attempt must fail (foreign realm, tampered or replayed token, NTLM, malformed
header, wrong keytab) without leaving anything behind and without locking anyone out of the form."""
import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse

import pytest
import requests

from conftest import CALLBACK, Portal, free_port
from kdc_fixture import KDC

ALICE_PASSWORD = "alice-kerberos-password"
LOCAL_PASSWORD = "alice-local-password"

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is required")


@pytest.fixture(scope="module")
def kdc():
    k = KDC()
    k.add_user("alice", ALICE_PASSWORD)
    k.add_user("bob", "bob-kerberos-password")
    k.add_user("carol", "carol-kerberos-password")
    yield k
    k.stop()


@pytest.fixture(scope="module")
def keytab(kdc):
    return kdc.keytab("HTTP/localhost")


def kerberos_portal(kdc, keytab, realms="[EXAMPLE.ORG]", extra=""):
    """A portal on http://localhost:PORT (the service principal is HTTP/localhost)."""
    yaml = f"""
kerberos:
  keytab: {keytab}
  realms: {realms}
  principal_mapping:
    - match: '^carol@EXAMPLE\\.ORG$'
      replace: 'alice'
kubernetes:
  clusters:
    - name: prod
      server: https://127.0.0.1:6443
      namespace: team-a
{extra}"""
    env = {k: kdc.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    return Portal(extra_yaml=yaml, issuer_host="localhost", env=env)


@pytest.fixture(scope="module")
def portal(kdc, keytab):
    p = kerberos_portal(kdc, keytab)
    r = p.cli("user", "add", "alice", "--password-stdin", "--email", "alice@example.org", "--name", "Alice Liddell",
              "--group", "dev", stdin=LOCAL_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    r = p.cli("user", "add", "bob", "--password-stdin", stdin="bob-local-password\n")
    assert r.returncode == 0, r.stderr
    assert p.cli("user", "disable", "bob").returncode == 0
    yield p
    assert p.stop() == 0
    shutil.rmtree(p.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def alice_env(kdc):
    return kdc.kinit("alice", ALICE_PASSWORD)


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(portal, challenge, state="st-1", nonce="n-1"):
    q = urllib.parse.urlencode({"response_type": "code", "client_id": "rp-public", "redirect_uri": CALLBACK,
                                "scope": "openid profile email groups offline_access", "state": state, "nonce": nonce,
                                "code_challenge": challenge, "code_challenge_method": "S256"})
    return f"{portal.issuer}/authorize?{q}"


def curl(env, *args):
    r = subprocess.run(["curl", "-sS", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def responses(header_dump):
    """[(status, {lower-case name: [values]})] for every response `curl -D -` printed."""
    out = []
    for block in re.split(r"\r?\n\r?\n", header_dump.strip()):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("HTTP/"):
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        out.append((int(lines[0].split()[1]), headers))
    return out


def audit(portal, type_):
    r = portal.cli("audit", "--type", type_, "--json", "--limit", "200")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def capture_negotiate_token(env, port):
    """A real initiator token for HTTP/localhost, as curl sends it, from a stand-in that only records it."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            auth = self.headers.get("Authorization")
            if auth:
                seen.append(auth)
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        subprocess.run(["curl", "-s", "-o", "/dev/null", "--negotiate", "-u", ":", f"http://localhost:{port}/"], env=env, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert seen and seen[0].startswith("Negotiate "), "curl did not send a Negotiate token"
    return seen[0]


# --- the flows --------------------------------------------------------------------------------

def test_curl_negotiate_completes_an_authorization_code_flow(portal, alice_env):
    verifier, challenge = pkce()
    jar = os.path.join(portal.dir, "curl-cookies")
    # /authorize → /login?req=… (the browser cookie binds the pending sign-in to this client).
    dump = curl(alice_env, "-o", "/dev/null", "-D", "-", "-c", jar, authorize_url(portal, challenge))
    (status, headers), = responses(dump)
    assert status == 302
    login = urllib.parse.urljoin(portal.issuer, headers["location"][0])
    assert login.startswith(portal.issuer + "/login?req=")
    # curl sends alice's ticket (curl 7.88 does it up front; others first take the 401 Negotiate challenge).
    dump = curl(alice_env, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", "-b", jar, "-c", jar, login)
    *challenges, (second, h2) = responses(dump)
    for first, h1 in challenges:
        assert first == 401 and h1["www-authenticate"] == ["Negotiate"]
    assert second == 303, dump
    # Mutual authentication: the server proves itself with a token of its own.
    assert h2["www-authenticate"][0].startswith("Negotiate ") and len(h2["www-authenticate"][0]) > 20
    assert any(c.startswith("portal_session=") or "session" in c.split("=")[0] for c in h2["set-cookie"])
    back = urllib.parse.urlparse(h2["location"][0])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    q = urllib.parse.parse_qs(back.query)
    assert q["state"] == ["st-1"]

    r = requests.post(portal.issuer + "/token", data={"grant_type": "authorization_code", "code": q["code"][0],
                                                     "redirect_uri": CALLBACK, "client_id": "rp-public", "code_verifier": verifier})
    assert r.status_code == 200, r.text
    tokens = r.json()
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["preferred_username"] == "alice" and claims["email"] == "alice@example.org" and claims["groups"] == ["dev"]
    assert claims["iss"] == portal.issuer and claims["nonce"] == "n-1"

    # The family is a Kerberos one and refreshes (revalidated through the local directory alice is in).
    r = requests.post(portal.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                                     "client_id": "rp-public"})
    assert r.status_code == 200, r.text
    events = [e for e in audit(portal, "login.success") if e["details"].get("method") == "kerberos"]
    assert events and events[0]["actor"] == "alice" and events[0]["details"]["principal"] == "alice@EXAMPLE.ORG"


def test_negotiate_on_the_kubernetes_page_goes_back_to_next(portal, alice_env):
    jar = os.path.join(portal.dir, "curl-cookies-next")
    dump = curl(alice_env, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", "-c", jar,
                portal.issuer + "/login?next=%2Fkubernetes")
    status, headers = responses(dump)[-1]
    assert status == 303 and headers["location"] == ["/kubernetes"]
    page = curl(alice_env, "-b", jar, portal.issuer + "/kubernetes")
    assert "alice" in page and "prod" in page


def test_signing_out_is_not_undone_by_the_kerberos_ticket(portal, alice_env):
    """After sign-out the login page does not challenge by itself (a browser with a ticket would sign
    straight back in); a link starts Kerberos when the person asks, and signing in ends the quiet."""
    jar = os.path.join(portal.dir, "curl-cookies-signout")
    dump = curl(alice_env, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", "-c", jar, portal.issuer + "/login")
    assert responses(dump)[-1][0] == 303
    home = curl(alice_env, "-b", jar, "-c", jar, portal.issuer + "/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home).group(1)
    dump = curl(alice_env, "-o", "/dev/null", "-D", "-", "-b", jar, "-c", jar, "--data-urlencode", f"csrf={csrf}", "-d", "end=browser",
                portal.issuer + "/logout")
    status, headers = responses(dump)[-1]
    assert status == 303 and headers["location"] == ["/login"]
    assert any(c.startswith("portal_signed_out=1") for c in headers["set-cookie"])
    # What a browser sees next: the form, no challenge, and the way to Kerberos when wanted.
    dump = curl(alice_env, "-D", "-", "-b", jar, "-c", jar, portal.issuer + "/login")
    status, headers = responses(dump)[0]
    assert status == 200 and "www-authenticate" not in headers
    assert 'href="/login?kerberos=1"' in dump and "You have signed out." in dump
    dump = curl(alice_env, "-o", "/dev/null", "-D", "-", "-b", jar, portal.issuer + "/login?kerberos=1")
    status, headers = responses(dump)[0]
    assert status == 401 and headers["www-authenticate"] == ["Negotiate"]
    dump = curl(alice_env, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", "-b", jar, "-c", jar, portal.issuer + "/login?kerberos=1")
    status, headers = responses(dump)[-1]
    assert status == 303 and any(c.startswith("portal_signed_out=;") for c in headers["set-cookie"]), headers
    assert "Hello" in curl(alice_env, "-b", jar, portal.issuer + "/")


def test_headless_chromium_reaches_the_kubernetes_page_without_typing(portal, alice_env, tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(binary):
            pytest.fail(f"{binary} is missing: scripts/test.sh installs chromium chromium-driver")
    home = tmp_path_factory.mktemp("chromium-home")
    artifacts = tempfile.mkdtemp(prefix="portal-kerberos-artifacts-")
    env = dict(alice_env, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_DATA_HOME=str(home / "data"), XDG_RUNTIME_DIR=str(home / "run"))
    os.makedirs(home / "run", mode=0o700)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={home / 'profile'}",
              "--auth-server-allowlist=localhost", "--window-size=1200,1000"]:
        opts.add_argument(a)
    # chromedriver passes its environment (KRB5_CONFIG, KRB5CCNAME, HOME) on to the browser.
    service = Service("/usr/bin/chromedriver", env=env)
    drv = webdriver.Chrome(service=service, options=opts)
    try:
        # The first Negotiate challenge of a fresh browser process fails (RECIPES): warm up once.
        drv.get(portal.issuer + "/login")
        drv.get(portal.issuer + "/kubernetes")
        shot = os.path.join(artifacts, "kubernetes-page.png")
        drv.save_screenshot(shot)
        print(f"\nscreenshot of the Kubernetes page reached through Kerberos: {shot}")
        assert drv.current_url == portal.issuer + "/kubernetes", drv.page_source[:2000]
        body = drv.page_source
        assert "alice" in body and "prod" in body
        assert not drv.find_elements("css selector", "input[type=password]")
        # The command is made when asked for, and shown once.
        drv.find_element("css selector", "form[action='/kubernetes/command'] button").click()
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(drv, 15).until(lambda d: "/shown/" in d.current_url)
        assert "kubectl config set-credentials" in drv.page_source
    finally:
        drv.quit()


def test_without_a_ticket_the_login_page_is_a_401_challenge_with_a_working_form(portal):
    s = requests.Session()
    verifier, challenge = pkce()
    r = s.get(authorize_url(portal, challenge), allow_redirects=False)
    login = urllib.parse.urljoin(portal.issuer, r.headers["Location"])
    page = s.get(login)
    assert page.status_code == 401 and page.headers["WWW-Authenticate"] == "Negotiate"
    assert '<form method="post" action="/login"' in page.text and 'name="password"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    req = urllib.parse.parse_qs(urllib.parse.urlparse(login).query)["req"][0]
    r = s.post(portal.issuer + "/login", data={"csrf": csrf, "req": req, "username": "alice", "password": LOCAL_PASSWORD},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith(CALLBACK + "?code=")


def test_principal_mapping_rule_and_disabled_account(portal, kdc):
    # carol@EXAMPLE.ORG is mapped to the local user alice by the configured rule.
    carol = kdc.kinit("carol", "carol-kerberos-password")
    dump = curl(carol, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", portal.issuer + "/login?next=%2F")
    status, headers = responses(dump)[-1]
    assert status == 303 and headers["location"] == ["/"]
    # bob has a ticket but his account is disabled: a clear page with the form, no session.
    bob = kdc.kinit("bob", "bob-kerberos-password")
    out = tempfile.mktemp()
    dump = curl(bob, "--negotiate", "-u", ":", "-o", out, "-D", "-", portal.issuer + "/login")
    status, headers = responses(dump)[-1]
    body = open(out).read()
    assert status == 403 and "disabled" in body and 'name="password"' in body
    assert not any("session" in c for c in headers.get("set-cookie", []))


def test_a_kerberos_only_local_account_has_no_password(portal, kdc):
    # `user add --no-password`: the account exists for Kerberos; no password ever signs it in.
    r = portal.cli("user", "add", "dave", "--no-password", "--group", "dev")
    assert r.returncode == 0, r.stderr
    r = portal.cli("user", "add", "eve")  # neither flag: refused with the way out
    assert r.returncode != 0 and "--no-password" in r.stderr
    s = requests.Session()
    page = s.get(portal.issuer + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    for guess in ["", "dave", "dave-kerberos-password"]:
        r = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "dave", "password": guess}, allow_redirects=False)
        assert r.status_code in (400, 401), (guess, r.status_code)
    kdc.add_user("dave", "dave-kerberos-password")
    dave = kdc.kinit("dave", "dave-kerberos-password")
    dump = curl(dave, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", portal.issuer + "/login?next=%2F")
    status, headers = responses(dump)[-1]
    assert status == 303 and headers["location"] == ["/"]


def test_a_principal_of_a_realm_not_allowed_is_refused(kdc, keytab, alice_env):
    p = kerberos_portal(kdc, keytab, realms="[CORP.EXAMPLE.ORG]")
    try:
        r = p.cli("user", "add", "alice", "--password-stdin", stdin=LOCAL_PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
        out = os.path.join(p.dir, "body.html")
        dump = curl(alice_env, "--negotiate", "-u", ":", "-o", out, "-D", "-", p.issuer + "/login?next=%2Fkubernetes")
        status, headers = responses(dump)[-1]
        body = open(out).read()
        assert status == 403
        assert "alice@EXAMPLE.ORG" in body and "EXAMPLE.ORG is not allowed" in body
        assert 'name="password"' in body  # never a dead end
        assert not any("session" in c for c in headers.get("set-cookie", []))
        events = audit(p, "login.failure")
        assert events and events[0]["details"]["reason"] == "realm not allowed" and events[0]["details"]["method"] == "kerberos"
        assert not audit(p, "login.success")
    finally:
        assert p.stop() == 0
        shutil.rmtree(p.dir, ignore_errors=True)


def test_tampered_replayed_ntlm_and_malformed_tokens_are_refused(portal, alice_env):
    good = capture_negotiate_token(alice_env, free_port())
    raw = bytearray(base64.b64decode(good.split(" ", 1)[1]))
    raw[len(raw) // 2] ^= 0x01
    tampered = "Negotiate " + base64.b64encode(bytes(raw)).decode()
    before = len(audit(portal, "login.success"))

    def attempt(value, url="/login"):
        return requests.get(portal.issuer + url, headers={"Authorization": value}, allow_redirects=False)

    r = attempt(tampered)
    assert r.status_code == 401 and 'name="password"' in r.text and "not accepted" in r.text
    assert "Set-Cookie" not in r.headers or "session" not in r.headers["Set-Cookie"]
    # The untouched token works once; the replay cache refuses it the second time.
    r = attempt(good, "/login?next=%2Fkubernetes")
    assert r.status_code == 303 and r.headers["WWW-Authenticate"].startswith("Negotiate ")
    r = attempt(good, "/login?next=%2Fkubernetes")
    assert r.status_code == 401 and "session" not in r.headers.get("Set-Cookie", "")
    # NTLM inside Negotiate is not Kerberos.
    ntlm = "Negotiate " + base64.b64encode(b"NTLMSSP\x00\x01\x00\x00\x00\x07\x82\x08\xa2" + bytes(24)).decode()
    r = attempt(ntlm)
    assert r.status_code == 401 and 'name="password"' in r.text
    failures = audit(portal, "login.failure")
    assert sum(1 for e in failures if e["details"].get("reason") == "invalid Negotiate token") >= 3

    # Malformed or oversized headers: 400, nothing checked, nothing written (not even an audit line).
    count = len(audit(portal, "login.failure"))
    for bad in ["Negotiate", "Negotiate !!!not-base64!!!", "Negotiate " + "A" * (70 * 1024), "Negotiate a b c"]:
        r = attempt(bad)
        assert r.status_code in (400, 431), (bad[:30], r.status_code)
        assert "session" not in r.headers.get("Set-Cookie", "")
    assert len(audit(portal, "login.failure")) == count
    assert len(audit(portal, "login.success")) == before + 1
    # The form still works for this address afterwards.
    s = requests.Session()
    page = s.get(portal.issuer + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "alice", "password": LOCAL_PASSWORD}, allow_redirects=False)
    assert r.status_code == 303


def test_a_keytab_for_another_principal_stops_the_portal_with_a_clear_message(kdc):
    other = kdc.keytab("HTTP/elsewhere.example.org")
    env = {k: kdc.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    with pytest.raises(RuntimeError) as e:
        Portal(extra_yaml=f"kerberos:\n  keytab: {other}\n  realms: [EXAMPLE.ORG]\n", issuer_host="localhost", env=env,
               expect_setup_link=False)
    message = str(e.value)
    assert "HTTP/localhost" in message and "HTTP/elsewhere.example.org@EXAMPLE.ORG" in message
    # check-config says the same, with the key's location.
    d = tempfile.mkdtemp(prefix="portal-kcheck-")
    cfg = os.path.join(d, "portal.yaml")
    with open(cfg, "w") as f:
        f.write(f"issuer: http://localhost:{free_port()}\ndata_dir: {d}/data\nkerberos:\n  keytab: {other}\n  realms: [EXAMPLE.ORG]\n")
    from conftest import PORTAL_BIN
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", cfg], capture_output=True, text=True, env=dict(os.environ, **env))
    assert r.returncode != 0
    assert "kerberos.keytab" in r.stdout and "expected service principal HTTP/localhost" in r.stdout
    shutil.rmtree(d, ignore_errors=True)


# --- Kerberos with the directory: lookup in LDAP, service bind with SASL/GSSAPI ----------------

LDIF = """dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice from LDAP
sn: Liddell
mail: alice@ldap.example.org

dn: cn=platform,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: platform
member: uid=alice,ou=people,dc=example,dc=org
"""


@pytest.fixture(scope="module")
def gssapi_slapd(kdc):
    """slapd on ldap://localhost with SASL/GSSAPI (its key: ldap/localhost). Only the service
    identity portal-svc may read; anonymous and simple binds see nothing."""
    for tool in ("slapd", "ldapadd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} is missing: scripts/test.sh installs slapd ldap-utils")
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/sasl2/libgssapiv2.so") and not any(
            os.path.exists(os.path.join(d, "libgssapiv2.so")) for d in ("/usr/lib/sasl2", "/usr/lib64/sasl2")):
        pytest.fail("the Cyrus SASL GSSAPI module is missing: scripts/test.sh installs libsasl2-modules-gssapi-mit")
    kdc.add_user("portal-svc", "portal-svc-password")
    keytab = kdc.keytab("ldap/localhost")
    d = tempfile.mkdtemp(prefix="portal-slapd-gssapi-")
    os.makedirs(f"{d}/data")
    port = free_port()
    with open(f"{d}/slapd.conf", "w") as f:
        f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
sasl-host localhost
sasl-realm {kdc.realm}
authz-regexp "uid=([^,]*),cn={kdc.realm.lower()},cn=gssapi,cn=auth" "uid=$1,ou=services,dc=example,dc=org"
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw adminpw
directory {d}/data
access to * by dn.exact="uid=portal-svc,ou=services,dc=example,dc=org" read by dn.exact="cn=admin,dc=example,dc=org" write by * none
""")
    env = dict(kdc.env, KRB5_KTNAME=f"FILE:{keytab}")
    url = f"ldap://localhost:{port}"
    r = subprocess.run(["slapd", "-f", f"{d}/slapd.conf", "-h", url + "/", "-u", "root", "-g", "root"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import time
    deadline = time.time() + 10
    while subprocess.run(["ldapsearch", "-x", "-H", url, "-s", "base", "-b", ""], capture_output=True).returncode != 0:
        assert time.time() < deadline, "slapd did not start"
        time.sleep(0.1)
    r = subprocess.run(["ldapadd", "-x", "-H", url, "-D", "cn=admin,dc=example,dc=org", "-w", "adminpw"], input=LDIF,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    yield url
    with open(f"{d}/slapd.pid") as f:
        os.kill(int(f.read().strip()), 15)
    shutil.rmtree(d, ignore_errors=True)


def test_kerberos_login_looks_alice_up_in_ldap_bound_with_sasl_gssapi(kdc, keytab, gssapi_slapd, alice_env):
    # The portal's service ticket cache, as the kinit sidecar of deploy/kubernetes/examples/kerberos keeps it.
    svc = kdc.kinit("portal-svc", "portal-svc-password")
    # Anonymous reads see nothing: whatever the portal finds, it found through the GSSAPI bind.
    r = subprocess.run(["ldapsearch", "-x", "-H", gssapi_slapd, "-b", "dc=example,dc=org", "(uid=alice)"], capture_output=True, text=True)
    assert "dn: uid=alice" not in r.stdout
    extra = f"""
ldap:
  urls: [{gssapi_slapd}]
  bind_mechanism: gssapi
  user_search:
    base_dn: ou=people,dc=example,dc=org
  groups:
    base_dn: ou=groups,dc=example,dc=org
"""
    env = {k: kdc.env[k] for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    env["KRB5CCNAME"] = svc["KRB5CCNAME"]
    p = Portal(extra_yaml=f"kerberos:\n  keytab: {keytab}\n  realms: [EXAMPLE.ORG]\n{extra}", issuer_host="localhost", env=env)
    try:
        verifier, challenge = pkce()
        jar = os.path.join(p.dir, "jar")
        (status, headers), = responses(curl(alice_env, "-o", "/dev/null", "-D", "-", "-c", jar, authorize_url(p, challenge)))
        login = urllib.parse.urljoin(p.issuer, headers["location"][0])
        status, headers = responses(curl(alice_env, "--negotiate", "-u", ":", "-o", "/dev/null", "-D", "-", "-b", jar, "-c", jar, login))[-1]
        assert status == 303, p.logs()[-3000:]
        code = urllib.parse.parse_qs(urllib.parse.urlparse(headers["location"][0]).query)["code"][0]
        r = requests.post(p.issuer + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                    "client_id": "rp-public", "code_verifier": verifier})
        assert r.status_code == 200, r.text
        claims = json.loads(base64.urlsafe_b64decode(r.json()["id_token"].split(".")[1] + "=="))
        # The directory's identity: entryUUID subject, its name, mail and groups.
        assert claims["preferred_username"] == "alice" and claims["name"] == "Alice from LDAP"
        assert claims["email"] == "alice@ldap.example.org" and claims["groups"] == ["platform"]
        assert re.fullmatch(r"[0-9a-f-]{36}", claims["sub"])
        # Refresh revalidates the Kerberos family through LDAP (the directory alice came from).
        r = requests.post(p.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"],
                                                    "client_id": "rp-public"})
        assert r.status_code == 200, r.text
    finally:
        assert p.stop() == 0
        shutil.rmtree(p.dir, ignore_errors=True)
