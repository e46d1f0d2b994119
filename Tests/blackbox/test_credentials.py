"""Application credentials and robots: the self-service page, the admin pages, the TokenReview
webhook (v1 and v1beta1), token exchange, and the real kubectl through a stand-in API server
that calls the webhook exactly as kube-apiserver does."""
import html
import os
import re
import secrets
import subprocess
import threading
import time

import pytest
import requests
import yaml
from joserfc import jwt
from joserfc.jwk import KeySet

from apiserver_standin import StandIn, WebhookAuthenticator
from conftest import Portal
from test_kubectl import Kubectl, pki  # noqa: F401 (fixture)

PASSWORD = "credential-owner-pw"
WEBHOOK_TOKEN = secrets.token_hex(24)
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CRED_TYPE = "urn:portal:params:oauth:token-type:application-credential"


@pytest.fixture(scope="module")
def env(pki, tmp_path_factory):  # noqa: F811
    d = tmp_path_factory.mktemp("webhook")
    (d / "token").write_text(WEBHOOK_TOKEN + "\n")
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    extra = f"""
webhook:
  bearer_token_file: {d / 'token'}
admin_groups: ["portal-admins"]
kubernetes:
  clusters:
    - name: robots-cluster
      server: https://127.0.0.1:{standin.port}
      certificate_authority_file: {pki / 'ca.crt'}
"""
    p = Portal(extra_yaml=extra)
    standin.auth = WebhookAuthenticator(p.base + "/webhook/tokenreview", WEBHOOK_TOKEN)
    for user, groups in [("alice", ["dev", "ops"]), ("boss", ["portal-admins"])]:
        args = ["user", "add", user, "--password-stdin"] + sum([["--group", g] for g in groups], [])
        r = p.cli(*args, stdin=PASSWORD + "\n")
        assert r.returncode == 0, r.stderr
    yield p, standin
    standin.stop()
    assert p.stop() == 0


def login(p, user):
    s = requests.Session()
    page = s.get(p.base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(p.base + "/login", data={"csrf": csrf, "username": user, "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 303
    # The CSRF token is replaced at sign-in: take the new one from a page.
    fresh = re.search(r'name="csrf" value="([^"]+)"', s.get(p.base + "/credentials").text).group(1)
    assert fresh != csrf
    return s, fresh


def review(p, token, version="authentication.k8s.io/v1", audiences=None, bearer=WEBHOOK_TOKEN, raw=None):
    body = raw if raw is not None else {"apiVersion": version, "kind": "TokenReview", "spec": {"token": token}}
    if audiences is not None and raw is None:
        body["spec"]["audiences"] = audiences
    headers = {"Authorization": "Bearer " + bearer} if bearer else {}
    if isinstance(body, (dict, list)):
        return requests.post(p.base + "/webhook/tokenreview", json=body, headers=headers)
    return requests.post(p.base + "/webhook/tokenreview", data=body, headers=headers)


def pre(text, ident):
    m = re.search(rf'<pre id="{ident}"[^>]*>(.*?)</pre>', text, re.S)
    return html.unescape(m.group(1)) if m else None


def create_via_ui(p, session, csrf, name, groups=(), expires=86400):
    data = [("csrf", csrf), ("name", name), ("description", "made by a test"), ("expires", str(expires))] + [("group", g) for g in groups]
    r = session.post(p.base + "/credentials", data=data)
    assert r.status_code == 200, r.text
    token = pre(r.text, "new-token")
    assert token and token.startswith("kpc_")
    return token, r.text


def test_self_service_lifecycle_create_use_rotate_revoke(env):
    p, _ = env
    s, csrf = login(p, "alice")
    token, page = create_via_ui(p, s, csrf, "deploy pipeline", groups=["dev"])
    assert "shown once" in page
    kubeconfig = yaml.safe_load(pre(page, "kc-0"))
    assert kubeconfig["users"][0]["user"]["token"] == token
    # Shown once: the list never shows it again.
    listing = s.get(p.base + "/credentials").text
    assert token not in listing and "deploy pipeline" in listing

    for version in ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]:
        r = review(p, token, version=version)
        assert r.status_code == 200
        body = r.json()
        assert body["apiVersion"] == version and body["kind"] == "TokenReview"
        st = body["status"]
        assert st["authenticated"] is True
        assert st["user"]["username"] == "oidc:alice" and st["user"]["groups"] == ["oidc:dev"]  # restricted to dev
        cid = token.split("_")[1]
        assert st["user"]["extra"]["authentication.kubernetes.io/credential-id"] == ["portal:" + cid]

    # Rotation with an overlap: both secrets work; then rotation without overlap: the old one dies at once.
    # Rotation asks first (nothing changes without the confirmation) and offers an overlap, 1 hour by default.
    r = s.post(p.base + "/credentials/rotate", data={"csrf": csrf, "id": cid})
    assert r.status_code == 200 and pre(r.text, "new-token") is None and "Rotate “deploy pipeline”?" in html.unescape(r.text)
    assert re.search(r'name="overlap" value="3600" checked', r.text)
    assert review(p, token).json()["status"]["authenticated"] is True
    r = s.post(p.base + "/credentials/rotate", data={"csrf": csrf, "id": cid, "overlap": "3600", "confirm": "yes"})
    new = pre(r.text, "new-token")
    assert "The old secret works until" in r.text
    assert new and new != token and new.split("_")[1] == cid
    assert review(p, token).json()["status"]["authenticated"] is True
    assert review(p, new).json()["status"]["authenticated"] is True
    r = s.post(p.base + "/credentials/rotate", data={"csrf": csrf, "id": cid, "overlap": "0", "confirm": "yes"})
    newest = pre(r.text, "new-token")
    assert review(p, new).json()["status"]["authenticated"] is False
    assert review(p, newest).json()["status"]["authenticated"] is True

    # Revoke: asked first, then done.
    r = s.post(p.base + "/credentials/revoke", data={"csrf": csrf, "id": cid})
    assert r.status_code == 200 and "Revoke “deploy pipeline”?" in html.unescape(r.text)
    assert review(p, newest).json()["status"]["authenticated"] is True
    r = s.post(p.base + "/credentials/revoke", data={"csrf": csrf, "id": cid, "confirm": "yes"})
    assert r.status_code == 200 and "Revoked" in r.text
    st = review(p, newest).json()["status"]
    assert st["authenticated"] is False and st["error"] == "credential revoked"
    # Asking for a group the owner does not have is refused with a clear message.
    r = s.post(p.base + "/credentials", data={"csrf": csrf, "name": "x", "expires": "3600", "group": "root"})
    # (Refusals are a 303 back to the list with the reason too: a reload sends nothing again.)
    assert r.history[0].status_code == 303 and "Not a group of the owner: root" in r.text
    # Longer than the maximum: refused.
    r = s.post(p.base + "/credentials", data={"csrf": csrf, "name": "x", "expires": str(400 * 86400)})
    assert r.history[0].status_code == 303 and "at most" in r.text
    # Another user cannot revoke it; CSRF is required.
    r = s.post(p.base + "/credentials/revoke", data={"id": cid})
    assert r.status_code == 403


def test_webhook_refuses_bad_reviews_and_bad_tokens(env):
    p, _ = env
    s, csrf = login(p, "alice")
    token, _ = create_via_ui(p, s, csrf, "for bad inputs")
    assert review(p, token, bearer=None).status_code == 401
    assert review(p, token, bearer="wrong" * 10).status_code == 401
    assert review(p, None, raw="not json").status_code == 400
    assert review(p, None, raw={"apiVersion": "v1", "kind": "TokenReview", "spec": {"token": token}}).status_code == 400
    assert review(p, None, raw={"apiVersion": "authentication.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"token": token}}).status_code == 400
    assert review(p, None, raw={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}).status_code == 400
    for bad in [token[:-1], token + "A", token.upper(), token.swapcase(), "kpc_" + "0" * 66, "", "Bearer " + token]:
        r = review(p, bad)
        assert r.status_code == 200 and r.json()["status"]["authenticated"] is False, bad
    # Audiences (webhook.audiences empty, the default): whatever the API server names is echoed back.
    r = review(p, token, audiences=["https://kubernetes.default.svc.cluster.local"]).json()["status"]
    assert r["authenticated"] is True and r["audiences"] == ["https://kubernetes.default.svc.cluster.local"]


def metric(p, name, **labels):
    """The value of one Prometheus series on /metrics (0 when it is not there yet)."""
    text = requests.get(p.base + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_every_review_and_login_in_its_own_series(env):
    # Each TokenReview answer and each failed login lands once in its own series, and a request
    # refused before it is a review (wrong bearer) in none.
    p, _ = env
    s, csrf = login(p, "alice")
    token, _ = create_via_ui(p, s, csrf, "for the counters")
    before = {r: metric(p, "portal_webhook_requests_total", result=r) for r in ("authenticated", "refused", "bad_request")}
    failures = metric(p, "portal_logins_total", method="password", result="failure")
    audited = metric(p, "portal_audit_events_total", type="login.failure", result="failure")
    for _ in range(3):
        assert review(p, token).json()["status"]["authenticated"] is True
    for _ in range(2):
        assert review(p, token + "A").json()["status"]["authenticated"] is False
    assert review(p, None, raw="not json").status_code == 400
    assert review(p, token, bearer="wrong" * 10).status_code == 401  # not a review: not counted
    for _ in range(2):
        page = requests.Session()
        c = re.search(r'name="csrf" value="([^"]+)"', page.get(p.base + "/login").text).group(1)
        assert page.post(p.base + "/login", data={"csrf": c, "username": "nobody-counted", "password": "wrong-password"}).status_code in (200, 401)
    after = {r: metric(p, "portal_webhook_requests_total", result=r) for r in before}
    assert {r: after[r] - before[r] for r in before} == {"authenticated": 3, "refused": 2, "bad_request": 1}
    assert metric(p, "portal_logins_total", method="password", result="failure") - failures == 2
    assert metric(p, "portal_audit_events_total", type="login.failure", result="failure") - audited == 2


def test_owner_disabled_or_losing_a_group_bites_at_once(env):
    p, _ = env
    s, csrf = login(p, "alice")
    token, _ = create_via_ui(p, s, csrf, "owner lifecycle")  # all of alice's groups
    assert sorted(review(p, token).json()["status"]["user"]["groups"]) == ["oidc:dev", "oidc:ops"]
    assert p.cli("user", "set-groups", "alice", "--group", "dev").returncode == 0
    assert review(p, token).json()["status"]["user"]["groups"] == ["oidc:dev"]
    assert p.cli("user", "disable", "alice").returncode == 0
    st = review(p, token).json()["status"]
    assert st["authenticated"] is False and "owner" in st["error"]
    assert p.cli("user", "enable", "alice").returncode == 0
    assert p.cli("user", "set-groups", "alice", "--group", "dev", "--group", "ops").returncode == 0
    assert review(p, token).json()["status"]["authenticated"] is True


def test_revocation_while_validations_run_concurrently(env):
    p, _ = env
    s, csrf = login(p, "alice")
    token, _ = create_via_ui(p, s, csrf, "concurrency")
    cid = token.split("_")[1]
    revoked_at = []
    after = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            ok = review(p, token).json()["status"]["authenticated"]
            if revoked_at:
                after.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = s.post(p.base + "/credentials/revoke", data={"csrf": csrf, "id": cid, "confirm": "yes"})
    assert r.status_code == 200
    revoked_at.append(time.time())
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    # Requests that started before the revoke returned may still pass; none started after it may.
    # (Checked strictly below with a fresh request.)
    assert review(p, token).json()["status"]["authenticated"] is False
    assert after.count(True) <= 6


def test_robot_credentials_from_the_admin_ui_work_with_kubectl_through_the_webhook(env):
    p, standin = env
    alice, _ = login(p, "alice")
    assert alice.get(p.base + "/admin/robots").status_code == 403  # not an admin
    s, csrf = login(p, "boss")  # admin through admin_groups
    page = s.get(p.base + "/admin/robots").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = s.post(p.base + "/admin/robots", data={"csrf": csrf, "name": "ci-bot", "team": "platform", "groups": "deployers, dev"})
    assert r.status_code == 200 and "robot:ci-bot" in r.text
    rid = re.search(r'name="id" value="([^"]+)"', r.text).group(1)
    r = s.post(p.base + "/admin/robots/credential", data={"csrf": csrf, "id": rid, "name": "pipeline"})
    token = pre(r.text, "new-token")
    assert token and token.startswith("kpc_")
    assert token not in s.get(p.base + "/admin/robots").text  # listing never shows secrets
    assert r.status_code == 200

    k = Kubectl("1.32")
    with open(k.kubeconfig, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:{standin.port}
    certificate-authority: {os.path.dirname(standin_ca())}/ca.crt
users:
- name: robot
  user:
    token: {token}
contexts:
- name: c
  context: {{cluster: c, user: robot, namespace: default}}
current-context: c
""")
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:robot:ci-bot" and sorted(standin.seen[-1][1]) == ["oidc:deployers", "oidc:dev"]

    # The admin disables the robot: kubectl is refused (no cache in the stand-in).
    r = s.post(p.base + "/admin/robots/disable", data={"csrf": csrf, "id": rid})
    assert r.status_code == 200 and "robot:ci-bot's 1 credential stops authenticating" in html.unescape(r.text)
    assert k.run("get", "pods").returncode == 0  # not yet: only asked
    r = s.post(p.base + "/admin/robots/disable", data={"csrf": csrf, "id": rid, "confirm": "yes"})
    assert r.status_code == 200
    r = k.run("get", "pods")
    assert r.returncode != 0 and "unauthorized" in (r.stderr + r.stdout).lower()
    s.post(p.base + "/admin/robots/enable", data={"csrf": csrf, "id": rid})
    assert k.run("get", "pods").returncode == 0
    # Revoked by an admin from the credentials page.
    cid = token.split("_")[1]
    r = s.post(p.base + "/admin/credentials/revoke", data={"csrf": csrf, "id": cid, "confirm": "yes"})
    assert r.status_code == 200 and "revoked" in r.text.lower()
    assert k.run("get", "pods").returncode != 0
    # Every action is in the audit log.
    audit = s.get(p.base + "/admin/audit?type=credential.revoke").text
    assert f"credential “pipeline” ({cid})" in html.unescape(audit) and "boss" in audit


_ca_holder = {}


def standin_ca():
    return _ca_holder["ca"]


@pytest.fixture(autouse=True, scope="module")
def _remember_ca(pki):  # noqa: F811
    _ca_holder["ca"] = str(pki / "ca.crt")


def test_token_exchange_gives_a_60_second_id_token(env):
    p, _ = env
    r = p.cli("robot", "add", "exchanger", "--team", "platform", "--group", "dev")
    assert r.returncode == 0, r.stderr
    r = p.cli("credential", "create", "--robot", "exchanger", "--name", "x", "--expires", "1d")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    form = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": CRED_TYPE, "client_id": "kubernetes"}
    r = requests.post(p.base + "/token", data=form)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:id_token" and body["expires_in"] == 60
    keys = KeySet.import_key_set(requests.get(p.base + "/keys").json())
    claims = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["aud"] == "kubernetes" and claims["exp"] - claims["iat"] == 60
    assert claims["preferred_username"] == "robot:exchanger" and claims["groups"] == ["dev"]
    bad = dict(form, subject_token=token[:-1])
    r = requests.post(p.base + "/token", data=bad)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = requests.post(p.base + "/token", data=dict(form, subject_token_type="urn:ietf:params:oauth:token-type:access_token"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(p.base + "/token", data=dict(form, audience="someone-else"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_last_used_is_recorded_without_a_write_per_call(env):
    p, _ = env
    r = p.cli("robot", "add", "counted", "--team", "platform")
    token = p.cli("credential", "create", "--robot", "counted", "--name", "n", "--expires", "1d").stdout.strip()
    for _ in range(20):
        assert review(p, token).json()["status"]["authenticated"] is True
    listing = p.cli("credential", "list").stdout
    line = next(l for l in listing.splitlines() if l.startswith(token.split("_")[1]))
    # Not written yet: uses are batched (every 30 s, and at shutdown).
    assert "never-used" in line


def test_robot_cli_disable_enable_delete_bite_at_once_and_unknown_names_are_refused(env):
    p, _ = env
    assert p.cli("robot", "add", "cli-bot", "--team", "platform", "--group", "dev").returncode == 0
    token = p.cli("credential", "create", "--robot", "cli-bot", "--name", "job", "--expires", "1d").stdout.strip()
    st = review(p, token).json()["status"]
    assert st["authenticated"] is True and st["user"]["username"] == "oidc:robot:cli-bot"

    r = p.cli("robot", "disable", "cli-bot")
    assert r.returncode == 0 and "disabled robot:cli-bot" in r.stdout
    st = review(p, token).json()["status"]
    assert st["authenticated"] is False and "robot" in st["error"]
    assert "disabled" in p.cli("robot", "list").stdout.split("robot:cli-bot", 1)[1].split("\n", 1)[0]

    r = p.cli("robot", "enable", "cli-bot")
    assert r.returncode == 0 and "enabled robot:cli-bot" in r.stdout
    assert review(p, token).json()["status"]["authenticated"] is True

    for verb in ("disable", "enable", "delete"):
        r = p.cli("robot", verb, "no-such-bot")
        assert r.returncode != 0 and "no robot 'no-such-bot'" in r.stderr, (verb, r.stdout, r.stderr)

    r = p.cli("robot", "delete", "cli-bot")
    assert r.returncode == 0 and "deleted robot:cli-bot and revoked its credentials" in r.stdout
    assert review(p, token).json()["status"]["authenticated"] is False
    assert "robot:cli-bot" not in p.cli("robot", "list").stdout
