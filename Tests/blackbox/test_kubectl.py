"""The real kubectl, configured by the line the Kubernetes page renders, against a TLS stand-in
API server that verifies tokens like kube-apiserver: login → paste → get pods → expiry → refresh."""
import html
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
import requests
import yaml

from apiserver_standin import Authenticator, StandIn
from conftest import Portal

CLUSTER = "Prod \"EU\" ‘ü’ 'x' $HOME"   # quotes, a non-ASCII letter, and something a shell would expand
PASSWORD = "kubectl-user-password"
LIFETIME = 15  # kubectl refreshes when the id_token is within 10 s of expiring


def kubectl_dir():
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed (scripts/test.sh expects the kubectl package with its versioned binaries)")
    return os.path.dirname(os.path.realpath(found))


def kubectl_binary(version):
    path = os.path.join(kubectl_dir(), f"kubectl.{version}")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "2", "-subj", "/CN=Portal test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return d


@pytest.fixture(scope="module")
def env(pki):
    standin = StandIn(None, str(pki / "server.crt"), str(pki / "server.key"))
    extra = f"""
tokens:
  id_token_lifetime: {LIFETIME}s
  access_token_lifetime: {LIFETIME}s
kubernetes:
  clusters:
    - name: {yaml.safe_dump(CLUSTER, allow_unicode=True).strip().removesuffix('...').strip()}
      server: https://127.0.0.1:{standin.port}
      certificate_authority_file: {pki / 'ca.crt'}
      namespace: team-a
"""
    portal = Portal(extra_yaml=extra)
    standin.auth = Authenticator(portal.issuer, "kubernetes")
    r = portal.cli("user", "add", "alice", "--password-stdin", "--group", "dev", "--group", "ops", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    yield portal, standin
    standin.stop()
    assert portal.stop() == 0


def login(portal):
    s = requests.Session()
    r = s.get(portal.issuer + "/kubernetes", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=%2Fkubernetes"
    page = s.get(portal.issuer + r.headers["Location"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "alice", "password": PASSWORD, "next": "/kubernetes"},
               allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/kubernetes"
    return s, csrf


def bash_line(portal, session):
    r = session.get(portal.issuer + "/kubernetes")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    assert "15 seconds" in r.text and "15 minutes" in r.text
    # The page itself mints nothing and shows no token: the command is made by a POST and shown once.
    assert 'id="bash-0"' not in r.text and "refresh-token" not in r.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    r = session.post(portal.issuer + "/kubernetes/command", data={"csrf": csrf, "cluster": CLUSTER}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].startswith("/shown/"), r.status_code
    shown = portal.issuer + r.headers["Location"]
    r = session.get(shown)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    m = re.search(r'<pre id="bash-0"[^>]*>(.*?)</pre>', r.text, re.S)
    # Shown once: a reload says so and shows nothing.
    again = session.get(shown)
    assert again.status_code == 410 and "refresh-token" not in again.text and "Already shown" in again.text
    return html.unescape(m.group(1))


class Kubectl:
    def __init__(self, version, kubeconfig=None):
        self.dir = tempfile.mkdtemp(prefix="kubectl-")
        self.bin = os.path.join(self.dir, "bin")
        os.makedirs(self.bin)
        os.symlink(kubectl_binary(version), os.path.join(self.bin, "kubectl"))
        self.kubeconfig = kubeconfig or os.path.join(self.dir, "config")
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig, KUBECACHEDIR=os.path.join(self.dir, "cache"),
                        HOME=self.dir, PATH=self.bin + ":" + os.environ["PATH"])

    def bash(self, line):
        return subprocess.run(["bash", "-c", line], env=self.env, capture_output=True, text=True, timeout=60)

    def run(self, *args):
        return subprocess.run(["kubectl", *args], env=self.env, capture_output=True, text=True, timeout=60)

    def user_config(self):
        with open(self.kubeconfig) as f:
            cfg = yaml.safe_load(f)
        return cfg["users"][0]["user"]["auth-provider"]["config"]


def refresh_with(portal, token):
    return requests.post(portal.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": token},
                         auth=("kubernetes", ""))


def wait_for_refresh_window(cfg):
    """Sleeps until kubectl will consider the id_token expired (within 10 s of exp)."""
    import base64, json
    payload = cfg["id-token"].split(".")[1]
    exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    time.sleep(max(0, exp - 10 - time.time()) + 1)


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_pasted_bash_line_works_and_refreshes_through_the_portal(env, version):
    portal, standin = env
    session, _ = login(portal)
    line = bash_line(portal, session)
    k = Kubectl(version)
    r = k.bash(line)
    assert r.returncode == 0, r.stderr
    assert "Switched to context" in r.stdout
    contexts = k.run("config", "get-contexts", "-o", "name").stdout.split("\n")
    assert CLUSTER in contexts  # the name survived bash quoting byte for byte

    before = len(standin.seen)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    user, groups, path = standin.seen[-1]
    assert user == "oidc:alice" and sorted(groups) == ["oidc:dev", "oidc:ops"]
    assert path == "/api/v1/namespaces/team-a/pods"
    assert len(standin.seen) > before

    cfg = k.user_config()
    old_refresh = cfg["refresh-token"]
    wait_for_refresh_window(cfg)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    cfg2 = k.user_config()
    assert cfg2["refresh-token"] != old_refresh, "kubectl did not store the rotated refresh token"
    assert cfg2["id-token"] != cfg["id-token"]
    assert standin.seen[-1][0] == "oidc:alice"

    # The replaced refresh token is refused (past the grace window), and that kills its family.
    time.sleep(6)
    r = refresh_with(portal, old_refresh)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = refresh_with(portal, cfg2["refresh-token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_downloaded_kubeconfig_works_and_refreshes(env):
    portal, standin = env
    session, _ = login(portal)
    page = session.get(portal.issuer + "/kubernetes").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = session.post(portal.issuer + "/kubernetes/kubeconfig", data={"csrf": csrf, "cluster": CLUSTER, "variant": "oidc"})
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    k = Kubectl("1.32")
    with open(k.kubeconfig, "w") as f:
        f.write(r.text)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:alice"
    cfg = k.user_config()
    wait_for_refresh_window(cfg)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert k.user_config()["refresh-token"] != cfg["refresh-token"]
    # Without a CSRF token there is no download (and nothing is minted).
    r = session.post(portal.issuer + "/kubernetes/kubeconfig", data={"cluster": CLUSTER})
    assert r.status_code == 403


@pytest.mark.parametrize("version", ["1.32", "1.27"])
def test_five_parallel_kubectl_processes_refresh_together_and_the_family_survives(env, version):
    portal, standin = env
    session, _ = login(portal)
    k = Kubectl(version)
    assert k.bash(bash_line(portal, session)).returncode == 0
    cfg = k.user_config()
    wait_for_refresh_window(cfg)
    procs = [subprocess.Popen(["kubectl", "get", "pods"], env=k.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(5)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    # kubectl's own races on a shared kubeconfig: a writer takes <kubeconfig>.lock exclusively and
    # never waits ("config.lock: file exists"), and readers take no lock, so one that reads while
    # another writes can see an empty file and fall back to localhost:8080. Such a process is run
    # again; every other failure counts.
    for i, (code, err) in enumerate(results):
        if code != 0 and ("localhost:8080" in err or "config.lock: file exists" in err):
            results[i] = (k.run("get", "pods").returncode, "rerun after kubectl's own kubeconfig race: " + err)
    assert all(code == 0 for code, _ in results), results
    # All five got the same successor; the family is alive and keeps working.
    latest = k.user_config()["refresh-token"]
    assert latest != cfg["refresh-token"]
    time.sleep(6)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    r = refresh_with(portal, k.user_config()["refresh-token"])
    assert r.status_code == 200, r.text


def test_apiserver_setup_page_matches_the_running_configuration(env):
    portal, _ = env
    # alice is not an admin.
    session, _ = login(portal)
    assert session.get(portal.issuer + "/admin/apiserver").status_code == 403
    r = portal.cli("user", "add", "ops-admin", "--password-stdin", "--admin", stdin="admin-password-2\n")
    assert r.returncode == 0, r.stderr
    s = requests.Session()
    page = s.get(portal.issuer + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    s.post(portal.issuer + "/login", data={"csrf": csrf, "username": "ops-admin", "password": "admin-password-2"})
    r = s.get(portal.issuer + "/admin/apiserver")
    assert r.status_code == 200
    flags = html.unescape(re.search(r'<pre id="flags"[^>]*>(.*?)</pre>', r.text, re.S).group(1)).split("\n")
    assert f"--oidc-issuer-url={portal.issuer}" in flags
    assert "--oidc-client-id=kubernetes" in flags
    assert "--oidc-username-claim=preferred_username" in flags and "--oidc-username-prefix=oidc:" in flags
    assert "--oidc-groups-claim=groups" in flags and "--oidc-groups-prefix=oidc:" in flags
    assert "--oidc-signing-algs=RS256" in flags
    doc = yaml.safe_load(html.unescape(re.search(r'<pre id="authn"[^>]*>(.*?)</pre>', r.text, re.S).group(1)))
    assert doc["kind"] == "AuthenticationConfiguration" and doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert doc["jwt"][0]["issuer"]["url"] == portal.issuer and doc["jwt"][0]["issuer"]["audiences"] == ["kubernetes"]
    assert doc["jwt"][0]["claimMappings"]["username"] == {"claim": "preferred_username", "prefix": "oidc:"}


def test_exec_plugin_variant_configures_kubelogin(env):
    portal, _ = env
    session, _ = login(portal)
    r = session.get(portal.issuer + "/kubernetes?variant=exec")
    assert r.status_code == 200 and "kubelogin" in r.text
    line = html.unescape(re.search(r'<pre id="bash-0"[^>]*>(.*?)</pre>', r.text, re.S).group(1))
    assert "refresh-token" not in line  # the plugin logs in by itself; nothing secret is on the page
    k = Kubectl("1.32")
    r = k.bash(line)
    assert r.returncode == 0, r.stderr
    with open(k.kubeconfig) as f:
        cfg = yaml.safe_load(f)
    exec_cfg = cfg["users"][0]["user"]["exec"]
    assert exec_cfg["command"] == "kubectl"
    assert exec_cfg["args"][:2] == ["oidc-login", "get-token"]
    assert f"--oidc-issuer-url={portal.issuer}" in exec_cfg["args"] and "--oidc-client-id=kubernetes" in exec_cfg["args"]
    assert cfg["contexts"][0]["context"]["namespace"] == "team-a"
