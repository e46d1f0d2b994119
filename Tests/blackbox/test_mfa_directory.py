"""Issue 17, the second factor with the directory sign-ins and the real kubectl, against the real servers
the other suites start: an MIT KDC (kdc_fixture, SPNEGO tokens made by curl --negotiate from a real
ticket), an OpenLDAP slapd (ldap_fixture), and the real kubectl against the TLS stand-in API server.

- Kerberos, `mfa.kerberos: one_factor`: a factor holder's SPNEGO sign-in stops at /login/factor; with a
  pyotp code it completes, amr ["kerberos","otp","mfa"].
- Kerberos, `mfa.kerberos: satisfies`: no second step, amr ["kerberos","mfa"]; with `require: everyone`
  and no grace, a person without any factor gets tokens through Kerberos but not through a password.
- LDAP, `require: groups` on a directory group: members without a factor get no kubectl setup and no
  code, others get ["pwd"]; after enrolling, ["pwd","otp","mfa"]; the admin and CLI resets work for a
  directory person.
- kubectl: the command of a password+TOTP sign-in carries an mfa id_token, and the id_token kubectl
  itself obtains by refreshing (kubeconfig rewritten by its oidc auth provider) still says mfa, as the
  stand-in API server (with the mfa claim validation rule) sees it."""
import html
import re
import shutil

import pytest
import requests

import ldap_fixture as L
from apiserver_rules import RuleAuthenticator, unverified_claims
from apiserver_standin import StandIn
from conftest import CALLBACK, Portal, free_port
from mfa_helpers import (PASSWORD, add_user, assert_dead, audit_about, authorize, claims_of, code_flow_with_login, csrf,
                         exchange_code, factor_rows, factors_page, form, fresh_totp, hidden_fields, id_token_via_code_flow,
                         login_password, refresh, signed_in, submit_factor_code, text_of, totp_enroll)
from test_kerberos import ALICE_PASSWORD, capture_negotiate_token, kdc, kerberos_portal, keytab  # noqa: F401 (fixtures)
from test_kubectl import Kubectl, pki, wait_for_refresh_window  # noqa: F401 (pki is a fixture)
from test_ldap import LDAPPortal

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is required")

MFA_AMR = ["pwd", "otp", "mfa"]
DANA_KERBEROS_PASSWORD = "dana-kerberos-password"
MFA_EXPRESSION = "has(claims.amr) && 'mfa' in claims.amr"


class AtIssuer:
    """A portal seen through its issuer URL (http://localhost:PORT for Kerberos: the browser asks for a
    ticket for HTTP/<host in the URL>), so the shared helpers keep one cookie jar on that host."""

    def __init__(self, p):
        self.portal, self.base, self.issuer, self.cli = p, p.issuer, p.issuer, p.cli


def finish(p):
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly"


def negotiate(env, s, url):
    """GET url in browser `s` with a fresh Negotiate token for HTTP/localhost (each token works once)."""
    token = capture_negotiate_token(env, free_port())
    return s.get(url, headers={"Authorization": token}, allow_redirects=False)


def start_code_flow(P, s):
    """/authorize for rp-public in a signed-out browser: (login URL with req, PKCE verifier)."""
    r, verifier = authorize(P, s)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?"), (r.status_code, r.headers.get("Location"))
    return P.base + r.headers["Location"], verifier


def mfa_required_box(page):
    m = re.search(r'<(\w+)[^>]*\bid="mfa-required"[^>]*>', page)
    assert m, "no id=\"mfa-required\" box on the kubectl page"
    end = page.find(f"</{m.group(1)}>", m.end())
    return page[m.start():end if end > 0 else len(page)]


def has_kubectl_setup(page):
    return 'action="/kubernetes/command"' in page or 'action="/kubernetes/kubeconfig"' in page


def assert_authorize_refused(P, s):
    r, _ = authorize(P, s)
    assert r.status_code == 403 and "Location" not in r.headers, (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    assert 'href="/account/factors"' in r.text and "code=" not in r.text


def password_login(P, user, password=PASSWORD, s=None, **fields):
    """login_password for any portal: with Kerberos on, the login page is a 401 Negotiate challenge that
    carries the same form (a browser without a ticket shows it)."""
    s = s or requests.Session()
    page = s.get(P.base + "/login")
    assert page.status_code in (200, 401) and 'name="password"' in page.text, page.status_code
    r = s.post(P.base + "/login", data={"csrf": csrf(page.text), "username": user, "password": password, **fields},
               allow_redirects=False)
    return s, r


def signed_in_with_password(P, user, password):
    """Password sign-in of someone holding no factor: signed in at once (home, or sent to enroll)."""
    s, r = password_login(P, user, password)
    assert r.status_code == 303 and r.headers["Location"] in ("/", "/account/factors"), \
        (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    return s


# ---------------------------------------------------------------------------------------------
# Kerberos (real MIT KDC, SPNEGO)


@pytest.fixture(scope="module")
def alice_env(kdc):  # noqa: F811
    return kdc.kinit("alice", ALICE_PASSWORD)


@pytest.fixture(scope="module")
def dana_env(kdc):  # noqa: F811
    kdc.add_user("dana", DANA_KERBEROS_PASSWORD)
    return kdc.kinit("dana", DANA_KERBEROS_PASSWORD)


@pytest.fixture(scope="module")
def one_factor_portal(kdc, keytab):  # noqa: F811
    p = kerberos_portal(kdc, keytab)  # mfa.kerberos defaults to one_factor
    add_user(p, "alice", groups=["dev"])
    yield AtIssuer(p)
    finish(p)


@pytest.fixture(scope="module")
def satisfies_portal(kdc, keytab):  # noqa: F811
    p = kerberos_portal(kdc, keytab, extra="mfa:\n  require: everyone\n  grace_period: 0s\n  kerberos: satisfies\n")
    add_user(p, "alice", groups=["dev"])
    add_user(p, "dana", groups=["dev"])  # a local password too: the same person, two ways in
    yield AtIssuer(p)
    finish(p)


def test_kerberos_one_factor_asks_a_factor_holder_for_the_code(one_factor_portal, alice_env):
    P = one_factor_portal
    secret = totp_enroll(P, signed_in_with_password(P, "alice", PASSWORD))

    s = requests.Session()
    login, verifier = start_code_flow(P, s)
    r = negotiate(alice_env, s, login)
    # The ticket is accepted (mutual authentication answered) but that is only the first factor.
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor", (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    assert r.headers.get("WWW-Authenticate", "").startswith("Negotiate "), r.headers
    assert not signed_in(P, s), "signed in by Kerberos alone although alice holds a factor"
    r2, _ = authorize(P, s)
    assert not (r2.status_code == 302 and r2.headers.get("Location", "").startswith(CALLBACK)), "a code before the second step"

    r = submit_factor_code(P, s, fresh_totp(secret))
    assert r.status_code == 303 and r.headers["Location"].startswith(CALLBACK + "?"), (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    tokens = exchange_code(P, r.headers["Location"], verifier)
    c = claims_of(tokens["id_token"])
    assert c["preferred_username"] == "alice" and c["amr"] == ["kerberos", "otp", "mfa"], c.get("amr")
    # The browser session carries the same amr into later code flows.
    assert signed_in(P, s)
    c, _ = id_token_via_code_flow(P, s)
    assert c["amr"] == ["kerberos", "otp", "mfa"], c.get("amr")


def test_kerberos_satisfies_signs_a_factor_holder_in_at_once(satisfies_portal, alice_env):
    P = satisfies_portal
    s = signed_in_with_password(P, "alice", PASSWORD)  # require: everyone, no grace: enroll first
    totp_enroll(P, s)
    assert password_login(P, "alice")[1].headers["Location"] == "/login/factor"  # a password still needs the code

    s = requests.Session()
    login, verifier = start_code_flow(P, s)
    r = negotiate(alice_env, s, login)
    assert r.status_code == 303 and r.headers["Location"].startswith(CALLBACK + "?"), (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    c = claims_of(exchange_code(P, r.headers["Location"], verifier)["id_token"])
    assert c["preferred_username"] == "alice" and c["amr"] == ["kerberos", "mfa"], c.get("amr")


def test_kerberos_satisfies_the_policy_for_a_person_without_a_factor_but_a_password_does_not(satisfies_portal, dana_env):
    P = satisfies_portal
    # Kerberos: signed in, kubectl setup offered, tokens issued, amr says mfa; refresh keeps it.
    s = requests.Session()
    r = negotiate(dana_env, s, P.base + "/login?next=%2Fkubernetes")
    assert r.status_code == 303 and r.headers["Location"] == "/kubernetes", (r.status_code, r.headers.get("Location"), text_of(r.text)[:300])
    page = s.get(P.base + "/kubernetes", allow_redirects=False)
    assert page.status_code == 200 and 'id="mfa-required"' not in page.text and has_kubectl_setup(page.text), \
        (page.status_code, text_of(page.text)[:500])
    c, tokens = id_token_via_code_flow(P, s)
    assert c["preferred_username"] == "dana" and c["amr"] == ["kerberos", "mfa"], c.get("amr")
    r = refresh(P, tokens["refresh_token"])
    assert r.status_code == 200 and claims_of(r.json()["id_token"])["amr"] == ["kerberos", "mfa"], r.text

    # The same person with the password only: signed in, but nothing for Kubernetes and no code.
    s = signed_in_with_password(P, "dana", PASSWORD)
    assert 'href="/account/factors"' in mfa_required_box(s.get(P.base + "/kubernetes").text)
    assert_authorize_refused(P, s)


# ---------------------------------------------------------------------------------------------
# LDAP (real slapd): require a factor of a directory group


CLUSTER = "mfa-cluster"


@pytest.fixture(scope="module")
def slapd():
    s = L.Slapd()
    yield s
    s.close()


@pytest.fixture(scope="module")
def ldap_portal(slapd):
    # ops (directory group): alice, erin, carol; dave is in no group.
    extra = f"""mfa:
  require: groups
  groups: [ops]
  grace_period: 0s
kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:6443
      namespace: team-a
"""
    p = LDAPPortal([slapd.url], extra=extra)
    add_user(p, "root", admin=True)  # a local administrator beside the directory
    yield p
    finish(p)


def test_a_directory_group_member_needs_a_factor_and_gets_mfa_after_enrolling(ldap_portal):
    p = ldap_portal
    carol = L.PASSWORDS["carol"]
    s = signed_in_with_password(p, "carol", carol)
    page = s.get(p.base + "/kubernetes", allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    assert 'href="/account/factors"' in mfa_required_box(page.text)
    assert not has_kubectl_setup(page.text) and "refresh-token" not in page.text and "set-credentials" not in page.text
    assert_authorize_refused(p, s)

    secret = totp_enroll(p, s)
    s2, r = login_password(p, "carol", carol)
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor", (r.status_code, r.headers.get("Location"))
    assert not signed_in(p, s2)
    c, tokens, s2 = code_flow_with_login(p, "carol", code=fresh_totp(secret), password=carol)
    assert c["preferred_username"] == "carol" and "ops" in c["groups"] and c["amr"] == MFA_AMR, (c.get("groups"), c.get("amr"))
    r = refresh(p, tokens["refresh_token"])  # re-checked in the directory, amr kept
    assert r.status_code == 200 and claims_of(r.json()["id_token"])["amr"] == MFA_AMR, r.text
    page = s2.get(p.base + "/kubernetes").text
    assert 'id="mfa-required"' not in page and has_kubectl_setup(page)


def test_a_directory_person_outside_the_group_gets_a_password_only_code(ldap_portal):
    p = ldap_portal
    c, _, s = code_flow_with_login(p, "dave", password=L.PASSWORDS["dave"])
    assert c["preferred_username"] == "dave" and "ops" not in c.get("groups", []) and c["amr"] == ["pwd"], c
    page = s.get(p.base + "/kubernetes").text
    assert 'id="mfa-required"' not in page and has_kubectl_setup(page)


def test_an_admin_resets_a_directory_persons_factors(ldap_portal):
    p = ldap_portal
    alice = L.PASSWORDS["alice"]
    secret = totp_enroll(p, signed_in_with_password(p, "alice", alice))
    c, tokens, person = code_flow_with_login(p, "alice", code=fresh_totp(secret), password=alice)
    assert c["amr"] == MFA_AMR, c.get("amr")

    admin = signed_in_with_password(p, "root", PASSWORD)
    page = admin.get(p.base + "/admin/users/alice", allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    assert "directory (LDAP)" in page.text
    f = form(page.text, "/admin/users/factors/reset")
    who = hidden_fields(f)
    assert who.get("username") == "alice", f
    asked = admin.post(p.base + "/admin/users/factors/reset", data={**who, "csrf": csrf(page.text)}, allow_redirects=False)
    assert asked.status_code == 200, (asked.status_code, asked.headers.get("Location"), text_of(asked.text)[:300])
    confirm = form(asked.text, "/admin/users/factors/reset")
    assert signed_in(p, person)  # nothing happened yet
    data = {**hidden_fields(confirm), "csrf": csrf(asked.text), "confirm": "yes"}
    assert data.get("username") == "alice", data
    r = admin.post(p.base + "/admin/users/factors/reset", data=data, allow_redirects=False)
    assert r.status_code in (200, 303), (r.status_code, text_of(r.text)[:300])

    assert not signed_in(p, person)
    assert_dead(refresh(p, tokens["refresh_token"]))
    assert [e for e in audit_about(p, "factor.reset", "alice") if "root" in str(e)], "no factor.reset event by root"
    # No second step any more; and, in the required group without a factor, nothing for Kubernetes again.
    s = signed_in_with_password(p, "alice", alice)
    assert factor_rows(factors_page(p, s)) == {}
    assert 'id="mfa-required"' in s.get(p.base + "/kubernetes").text
    assert_authorize_refused(p, s)
    assert signed_in(p, admin)


def test_the_cli_resets_a_directory_persons_factors(ldap_portal):
    p = ldap_portal
    erin = L.PASSWORDS["erin"]
    s = signed_in_with_password(p, "erin", erin)
    phone = totp_enroll(p, s, name="phone")
    totp_enroll(p, s, name="tablet")
    c, tokens, person = code_flow_with_login(p, "erin", code=fresh_totp(phone), password=erin)
    assert c["amr"] == MFA_AMR, c.get("amr")
    r = p.cli("user", "reset-factors", "erin")
    assert r.returncode == 0, r.stderr
    assert "Removed 2 factors of erin; their sessions ended." in r.stdout, r.stdout
    assert not signed_in(p, person) and not signed_in(p, s)
    assert_dead(refresh(p, tokens["refresh_token"]))
    assert audit_about(p, "factor.reset", "erin")
    _, r = login_password(p, "erin", erin)
    assert r.status_code == 303 and r.headers["Location"] != "/login/factor", (r.status_code, r.headers.get("Location"))


# ---------------------------------------------------------------------------------------------
# The real kubectl: amr survives kubectl's own refresh


LIFETIME = 15  # kubectl refreshes when the id_token is within 10 s of expiring


class RecordingRules(RuleAuthenticator):
    """The stand-in's authenticator with the mfa claimValidationRule; records the claims of every token it accepted."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.accepted = []

    def authenticate(self, token):
        result = super().authenticate(token)
        self.accepted.append(unverified_claims(token))
        return result


@pytest.fixture(scope="module")
def kubectl_env(pki):  # noqa: F811
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    p = Portal(extra_yaml=f"""mfa:
  require: everyone
  grace_period: 0s
tokens:
  id_token_lifetime: {LIFETIME}s
  access_token_lifetime: {LIFETIME}s
kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:{standin.port}
      certificate_authority_file: {pki / 'ca.crt'}
      namespace: team-a
""")
    standin.auth = RecordingRules(p.issuer, "kubernetes", rules=[{"expression": MFA_EXPRESSION, "message": "mfa required"}])
    add_user(p, "kube-user", groups=["dev"])
    yield p, standin
    standin.stop()
    finish(p)


def kubectl_line(p, s):
    """POST /kubernetes/command, then the shown-once page: the bash line."""
    page = s.get(p.base + "/kubernetes")
    assert page.status_code == 200 and 'id="mfa-required"' not in page.text, text_of(page.text)[:500]
    r = s.post(p.base + "/kubernetes/command", data={"csrf": csrf(page.text), "cluster": CLUSTER}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), (r.status_code, r.headers.get("Location"))
    shown = s.get(p.base + r.headers["Location"])
    assert shown.status_code == 200, shown.status_code
    m = re.search(r'<pre id="bash-0"[^>]*>(.*?)</pre>', shown.text, re.S)
    assert m, "no <pre id=\"bash-0\"> on the shown-once page"
    return html.unescape(m.group(1))


def test_kubectl_refreshes_by_itself_and_the_new_id_token_still_says_mfa(kubectl_env):
    p, standin = kubectl_env
    secret = totp_enroll(p, signed_in_with_password(p, "kube-user", PASSWORD))
    s, r = login_password(p, "kube-user", next="/kubernetes")
    assert r.status_code == 303 and r.headers["Location"] == "/login/factor", (r.status_code, r.headers.get("Location"))
    r = submit_factor_code(p, s, fresh_totp(secret))
    assert r.status_code == 303 and r.headers["Location"] == "/kubernetes", (r.status_code, r.headers.get("Location"))

    k = Kubectl("1.32")
    r = k.bash(kubectl_line(p, s))
    assert r.returncode == 0, r.stderr
    cfg = k.user_config()
    first = claims_of(cfg["id-token"])
    assert first["preferred_username"] == "kube-user" and first["amr"] == MFA_AMR, first.get("amr")

    r = k.run("get", "pods")
    assert r.returncode == 0, (r.stderr, standin.refused[-3:])
    assert standin.seen[-1][0] == "oidc:kube-user" and standin.auth.accepted[-1]["amr"] == MFA_AMR

    # kubectl's oidc auth provider refreshes the expiring id_token itself and rewrites the kubeconfig.
    wait_for_refresh_window(cfg)
    accepted = len(standin.auth.accepted)
    r = k.run("get", "pods")
    assert r.returncode == 0, (r.stderr, standin.refused[-3:])
    cfg2 = k.user_config()
    assert cfg2["id-token"] != cfg["id-token"] and cfg2["refresh-token"] != cfg["refresh-token"], "kubectl did not refresh"
    new = claims_of(cfg2["id-token"])
    assert new["exp"] > first["exp"] and new["preferred_username"] == "kube-user"
    assert new["amr"] == MFA_AMR, new.get("amr")
    # The stand-in (which refuses any id_token without mfa) accepted exactly that new token from kubectl.
    fresh = standin.auth.accepted[accepted:]
    assert fresh and all(c["exp"] == new["exp"] and c["amr"] == MFA_AMR for c in fresh), fresh
    assert standin.seen[-1][0] == "oidc:kube-user"
    assert not standin.auth.rule_refusals, standin.auth.rule_refusals
