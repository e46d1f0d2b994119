"""Issue 17, the API server side of the second factor: /admin/apiserver renders a claimValidationRules
entry that accepts only id_tokens whose amr says `mfa`. Proven twice: the rendered CEL expression
evaluated with a real CEL implementation (cel-python) as kube-apiserver would, and the TLS stand-in
API server, taught the rendered AuthenticationConfiguration (apiserver_rules.py), refusing the real
kubectl with a password-only id_token and serving it with an id_token from a sign-in with a code."""
import html
import re
import shutil

import pytest
import yaml

from apiserver_rules import RuleAuthenticator, evaluate_expression
from apiserver_standin import Authenticator, StandIn
from conftest import Portal
from mfa_helpers import (add_user, claims_of, code_flow_with_login, csrf, fresh_totp, login_password, login_with_totp,
                         totp_enroll)
from test_kubectl import Kubectl, pki  # noqa: F401 (pki is a fixture)

CLUSTER = "test-cluster"
EXPRESSION = "has(claims.amr) && 'mfa' in claims.amr"


def kubernetes_yaml(port, ca_file):
    return f"""kubernetes:
  clusters:
    - name: {CLUSTER}
      server: https://127.0.0.1:{port}
      certificate_authority_file: {ca_file}
      namespace: team-a
"""


@pytest.fixture(scope="module")
def env(pki):  # noqa: F811
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    # Everyone must have a factor, within 7 days: password-only people still get tokens (which the
    # API server must refuse), people with a factor get tokens whose amr says mfa.
    p = Portal(extra_yaml="mfa:\n  require: everyone\n  grace_period: 7d\n" + kubernetes_yaml(standin.port, pki / "ca.crt"))
    standin.auth = Authenticator(p.issuer, "kubernetes")
    add_user(p, "api-admin", admin=True)
    add_user(p, "pw-only")
    add_user(p, "strong")
    yield p, standin
    standin.stop()
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly"


@pytest.fixture(scope="module")
def strong_secret(env):
    """"strong" enrolls an authenticator app (once for the module): the secret."""
    p, _ = env
    s, r = login_password(p, "strong")
    assert r.status_code == 303 and r.headers["Location"] == "/", (r.status_code, r.headers.get("Location"))
    return totp_enroll(p, s)


def setup_page(p):
    s, r = login_password(p, "api-admin")
    assert r.status_code == 303 and r.headers["Location"] == "/", (r.status_code, r.headers.get("Location"))
    r = s.get(p.base + "/admin/apiserver", allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.headers.get("Location"))
    return r.text


def authentication_configuration(page):
    m = re.search(r'<pre id="authn"[^>]*>(.*?)</pre>', page, re.S)
    assert m, "no <pre id=\"authn\"> on the API server page"
    return html.unescape(m.group(1))


def mfa_rules(doc):
    return [r for r in doc["jwt"][0].get("claimValidationRules") or [] if r.get("expression") == EXPRESSION]


def kubectl_tokens(p, s):
    """POST /kubernetes/command and read the shown-once line: the id_token for the cluster."""
    page = s.get(p.base + "/kubernetes")
    assert page.status_code == 200
    r = s.post(p.base + "/kubernetes/command", data={"csrf": csrf(page.text), "cluster": CLUSTER}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), r.status_code
    shown = s.get(p.base + r.headers["Location"])
    it = re.search(r"id-token=([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", shown.text)
    assert it, "no id-token in the kubectl line"
    return it.group(1)


def get_pods(standin, pki_dir, token):  # noqa: F811
    k = Kubectl("1.32")
    return k.run(f"--server=https://127.0.0.1:{standin.port}", f"--certificate-authority={pki_dir / 'ca.crt'}",
                 f"--token={token}", "get", "pods", "-n", "team-a")


def test_the_setup_page_renders_the_mfa_claim_validation_rule(env):
    p, _ = env
    doc = yaml.safe_load(authentication_configuration(setup_page(p)))
    assert doc["kind"] == "AuthenticationConfiguration" and doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    rules = mfa_rules(doc)
    assert len(rules) == 1, doc["jwt"][0].get("claimValidationRules")
    host = p.issuer.split("://", 1)[1]
    assert rules[0]["message"] in {
        f"a second factor is required: sign in to {where} with a passkey or an authenticator code" for where in (p.issuer, host)
    }, rules[0]["message"]
    # The rest of the configuration is still there.
    assert doc["jwt"][0]["issuer"]["url"] == p.issuer
    assert doc["jwt"][0]["claimMappings"]["username"] == {"claim": "preferred_username", "prefix": "oidc:"}


def test_the_rendered_expression_evaluated_by_cel_accepts_only_mfa(env, strong_secret):
    p, _ = env
    rule = mfa_rules(yaml.safe_load(authentication_configuration(setup_page(p))))[0]
    expression = rule["expression"]  # as rendered, not this file's constant
    assert evaluate_expression(expression, {"sub": "x", "amr": ["pwd"]}) is False
    assert evaluate_expression(expression, {"sub": "x", "amr": ["pwd", "otp"]}) is False
    assert evaluate_expression(expression, {"sub": "x", "amr": ["pwd", "otp", "mfa"]}) is True
    assert evaluate_expression(expression, {"sub": "x", "amr": ["hwk", "user", "mfa"]}) is True
    assert evaluate_expression(expression, {"sub": "x"}) is False  # no amr: false, not an error
    # The claims of the portal's own id_tokens.
    c, _, _ = code_flow_with_login(p, "pw-only")
    assert c["amr"] == ["pwd"] and evaluate_expression(expression, c) is False
    c, _, _ = code_flow_with_login(p, "strong", code=fresh_totp(strong_secret))
    assert c["amr"] == ["pwd", "otp", "mfa"] and evaluate_expression(expression, c) is True


def test_the_real_kubectl_is_refused_without_a_second_factor_and_served_with_one(env, pki, strong_secret):  # noqa: F811
    p, standin = env
    config = authentication_configuration(setup_page(p))
    rules_auth = RuleAuthenticator.from_authentication_configuration(config)
    assert [r.expression for r in rules_auth.rules if r.expression == EXPRESSION], config
    message = [r.message for r in rules_auth.rules if r.expression == EXPRESSION][0]

    # Within grace, a password alone still gets the kubectl line (the API server is what refuses it).
    s, r = login_password(p, "pw-only")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    weak = kubectl_tokens(p, s)
    assert claims_of(weak)["amr"] == ["pwd"]
    standin.auth = Authenticator(p.issuer, "kubernetes")  # without the rules: the token is otherwise valid
    r = get_pods(standin, pki, weak)
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:pw-only"

    standin.auth = rules_auth
    seen = len(standin.seen)
    r = get_pods(standin, pki, weak)
    assert r.returncode != 0 and ("Unauthorized" in r.stderr or "must be logged in" in r.stderr), (r.returncode, r.stderr)
    assert len(standin.seen) == seen
    assert message in rules_auth.rule_refusals and standin.refused[-1] == message, (rules_auth.rule_refusals, standin.refused[-3:])

    # With a code at sign-in: amr says mfa, and kubectl is served.
    s, _ = login_with_totp(p, "strong", strong_secret)
    strong = kubectl_tokens(p, s)
    assert claims_of(strong)["amr"] == ["pwd", "otp", "mfa"]
    r = get_pods(standin, pki, strong)
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:strong" and standin.seen[-1][2] == "/api/v1/namespaces/team-a/pods"


def test_without_a_policy_the_rule_is_offered_but_not_in_the_configuration():
    p = Portal()
    try:
        add_user(p, "api-admin", admin=True)
        page = setup_page(p)
        doc = yaml.safe_load(authentication_configuration(page))
        assert mfa_rules(doc) == [], doc["jwt"][0].get("claimValidationRules")
        assert EXPRESSION in html.unescape(page), "the optional claimValidationRules block is not shown"
    finally:
        assert p.stop() == 0
        shutil.rmtree(p.dir, ignore_errors=True)
