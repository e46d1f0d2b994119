"""`kubectl-portal`, the portal's own kubectl credential plugin, with the real kubectl binaries:
a device-grant sign-in, kubectl through token expiry with the refresh in the plugin (the
kubeconfig is never rewritten), twenty parallel kubectl processes causing exactly one refresh,
logout revoking the session, the cache's mode and atomic replacement, and one-line failures."""
import json
import os
import re
import stat
import subprocess
import threading
import time

import pytest
import requests
import yaml

from conftest import PORTAL_BIN
from test_hardening import csrf_of
from test_kubectl import PASSWORD, Kubectl, env, pki  # noqa: F401 (fixtures)

PLUGIN = os.path.join(os.path.dirname(os.path.realpath(PORTAL_BIN)), "kubectl-portal")
pytestmark = pytest.mark.skipif(not os.path.exists(PLUGIN), reason=f"{PLUGIN} is not built (swift build builds it)")


def refreshes(portal):
    r = portal.cli("audit", "--type", "token.refresh", "--json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    return len([line for line in r.stdout.splitlines() if line.strip()])


def approve(portal, user_code):
    s = requests.Session()
    page = s.get(portal.issuer + "/login")
    r = s.post(portal.issuer + "/login", data={"csrf": csrf_of(page.text), "username": "alice", "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 303
    page = s.get(portal.issuer + "/device", params={"user_code": user_code})
    r = s.post(portal.issuer + "/device/decide", data={"csrf": csrf_of(page.text), "user_code": user_code, "decision": "approve"},
               allow_redirects=False)
    assert r.status_code == 303


class Plugin:
    def __init__(self, portal, k):
        self.portal, self.k = portal, k
        os.symlink(PLUGIN, os.path.join(k.bin, "kubectl-portal"))
        self.cache_dir = os.path.join(k.dir, "portal-cache")
        k.env["KUBECTL_PORTAL_CACHE_DIR"] = self.cache_dir
        k.env.pop("DISPLAY", None)
        k.env.pop("WAYLAND_DISPLAY", None)

    def run(self, *args, interactive=None):
        env = dict(self.k.env)
        if interactive is not None:
            env["KUBERNETES_EXEC_INFO"] = json.dumps({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1",
                                                      "spec": {"interactive": interactive}})
        return subprocess.run([PLUGIN, *args, "--issuer", self.portal.issuer], env=env, capture_output=True, text=True, timeout=60)

    def login(self):
        p = subprocess.Popen([PLUGIN, "login", "--device", "--issuer", self.portal.issuer], env=self.k.env, stderr=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        first = p.stderr.readline()
        m = re.search(r"enter the code ([A-Z]{4}-[A-Z]{4})", first)
        assert m, first
        assert "/device" in first
        approve(self.portal, m.group(1))
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "Signed in to" in err and "as alice" in err
        return err

    def cache_file(self):
        files = [f for f in os.listdir(self.cache_dir) if f.endswith(".json")]
        assert len(files) == 1, files
        return os.path.join(self.cache_dir, files[0])

    def kubeconfig(self, standin, ca):
        cfg = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{standin.port}", "certificate-authority": str(ca)}}],
               "users": [{"name": "alice", "user": {"exec": {
                   "apiVersion": "client.authentication.k8s.io/v1", "command": "kubectl-portal",
                   "args": ["get-token", "--issuer", self.portal.issuer], "interactiveMode": "IfAvailable", "provideClusterInfo": False}}}],
               "contexts": [{"name": "c", "context": {"cluster": "c", "user": "alice", "namespace": "team-a"}}],
               "current-context": "c"}
        with open(self.k.kubeconfig, "w") as f:
            yaml.safe_dump(cfg, f)
        with open(self.k.kubeconfig, "rb") as f:
            return f.read()


def wait_until_stale(cache_file):
    with open(cache_file) as f:
        exp = json.load(f)["expiry"]
    time.sleep(max(0, exp - 10 - time.time()) + 1)


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_through_expiry_refreshes_in_the_plugin_and_never_rewrites_the_kubeconfig(env, pki, version):  # noqa: F811
    portal, standin = env
    k = Kubectl(version)
    plugin = Plugin(portal, k)
    plugin.login()
    cache = plugin.cache_file()
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(cache)).st_mode) == 0o700
    status = plugin.run("status")
    assert status.returncode == 0 and "alice" in status.stdout and "dev" in status.stdout, status.stdout + status.stderr
    assert "session:  ends" in status.stdout, status.stdout  # from the portal's refresh_expires_in
    original = plugin.kubeconfig(standin, pki / "ca.crt")

    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:alice"
    before, inode = refreshes(portal), os.stat(cache).st_ino
    wait_until_stale(cache)
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert refreshes(portal) == before + 1, "the plugin refreshed once"
    assert os.stat(cache).st_ino != inode, "the cache is replaced (renamed over), not rewritten in place"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    with open(k.kubeconfig, "rb") as f:
        assert f.read() == original, "kubectl never rewrites the kubeconfig"
    # No token on a command line or in the environment kubectl passes.
    with open(cache) as f:
        tokens = json.load(f)
    assert tokens["refresh_token"] not in " ".join(plugin.run("get-token", interactive=False).args)


def test_twenty_parallel_kubectl_after_expiry_cause_one_refresh(env, pki):  # noqa: F811
    portal, standin = env
    k = Kubectl("1.33")
    plugin = Plugin(portal, k)
    plugin.login()
    plugin.kubeconfig(standin, pki / "ca.crt")
    wait_until_stale(plugin.cache_file())
    before = refreshes(portal)
    results = [None] * 20

    def one(i):
        results[i] = k.run("get", "pods")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [r.stderr for r in results if r.returncode != 0]
    assert failures == [], failures[:2]
    assert refreshes(portal) == before + 1, "exactly one refresh at the portal"


def test_logout_revokes_and_every_failure_is_one_line_that_says_what_to_do(env, pki):  # noqa: F811
    portal, standin = env
    k = Kubectl("1.32")
    plugin = Plugin(portal, k)
    r = plugin.run("get-token", interactive=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "not signed in" in r.stderr and f"run: kubectl portal login --issuer {portal.issuer}" in r.stderr
    plugin.login()
    r = plugin.run("get-token", interactive=False)
    assert r.returncode == 0, r.stderr
    cred = json.loads(r.stdout)
    assert cred["kind"] == "ExecCredential" and cred["apiVersion"] == "client.authentication.k8s.io/v1"
    assert cred["status"]["token"].count(".") == 2 and cred["status"]["expirationTimestamp"].endswith("Z")
    with open(plugin.cache_file()) as f:
        refresh_token = json.load(f)["refresh_token"]

    # The portal ends the session (an administrator here): the plugin says so, and how to get back.
    assert portal.cli("session", "revoke", "--user", "alice", "--all").returncode == 0
    wait_until_stale(plugin.cache_file())
    r = plugin.run("get-token", interactive=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "your portal session has ended" in r.stderr and "run: kubectl portal login" in r.stderr

    # Logout revokes at the portal and removes the cache.
    plugin.login()
    with open(plugin.cache_file()) as f:
        refresh_token = json.load(f)["refresh_token"]
    r = plugin.run("logout")
    assert r.returncode == 0 and "revoked" in r.stderr, r.stderr
    assert not [f for f in os.listdir(plugin.cache_dir) if f.endswith(".json")]
    r = requests.post(portal.issuer + "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "kubernetes"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # A wrong issuer: one line.
    r = subprocess.run([PLUGIN, "get-token", "--issuer", "http://127.0.0.1:9"], env=plugin.k.env, capture_output=True, text=True, timeout=60,
                       input="")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_kubectl_page_offers_the_plugin_and_the_portal_serves_it(env, monkeypatch):  # noqa: F811
    import hashlib

    from test_kubectl import CLUSTER, login
    portal, standin = env
    with open(PLUGIN, "rb") as f:
        built = f.read()
    digest = hashlib.sha256(built).hexdigest()
    r = requests.get(portal.issuer + "/downloads/kubectl-portal-linux-amd64")
    assert r.status_code == 200 and r.content == built and r.headers["Content-Type"] == "application/octet-stream"
    assert requests.get(portal.issuer + "/downloads/kubectl-portal-linux-amd64.sha256").text == f"{digest}  kubectl-portal\n"
    assert requests.get(portal.issuer + "/downloads/portal").status_code == 404

    session, _ = login(portal)
    page = session.get(portal.issuer + "/kubernetes", params={"variant": "plugin"}).text
    assert "Install kubectl-portal once" in page and digest in page and "sha256sum -c" in page
    assert "refresh-token" not in page and "id-token" not in page
    # The one-line install, run as printed (with curl and sha256sum), installs exactly the built binary.
    import html as htmlmod
    line = htmlmod.unescape(re.search(r'<pre id="install"[^>]*>(.*?)</pre>', page, re.S).group(1))
    k = Kubectl("1.32")
    r = k.bash(f"cd {k.dir} && {line}")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(k.dir, ".local", "bin", "kubectl-portal"), "rb") as f:
        assert f.read() == built

    # Its kubeconfig holds no token: the user is the exec plugin, and kubectl works with it.
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = session.post(portal.issuer + "/kubernetes/kubeconfig", data={"csrf": csrf, "cluster": CLUSTER, "variant": "plugin"})
    assert r.status_code == 200
    cfg = yaml.safe_load(r.text)
    ex = cfg["users"][0]["user"]["exec"]
    assert ex["command"] == "kubectl-portal" and ex["args"] == ["get-token", "--issuer", portal.issuer]
    assert ex["apiVersion"] == "client.authentication.k8s.io/v1" and ex["interactiveMode"] == "IfAvailable"
    plugin = Plugin(portal, k)
    with open(k.kubeconfig, "w") as f:
        f.write(r.text)
    plugin.login()
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:alice"

    # The official Python kubernetes client through the same exec plugin.
    kubernetes = pytest.importorskip("kubernetes")
    for key in ("KUBECTL_PORTAL_CACHE_DIR", "PATH"):
        monkeypatch.setenv(key, k.env[key])
    api = kubernetes.config.new_client_from_config(config_file=k.kubeconfig)
    assert kubernetes.client.CoreV1Api(api).list_namespaced_pod("team-a").items == []
    assert standin.seen[-1][0] == "oidc:alice"


def test_the_pasted_plugin_command_works_with_kubectl_1_27(env):  # noqa: F811
    """The page's bash line for the plugin variant (no token in it) configures even kubectl 1.27."""
    import html as htmlmod

    from test_kubectl import login
    portal, standin = env
    session, _ = login(portal)
    page = session.get(portal.issuer + "/kubernetes", params={"variant": "plugin"}).text
    line = htmlmod.unescape(re.search(r'<pre id="bash-0"[^>]*>(.*?)</pre>', page, re.S).group(1))
    assert "refresh-token" not in line and "kubectl-portal" in line
    k = Kubectl("1.27")
    plugin = Plugin(portal, k)
    r = k.bash(line)
    assert r.returncode == 0, r.stderr
    plugin.login()
    r = k.run("get", "pods")
    assert r.returncode == 0, r.stderr
    assert standin.seen[-1][0] == "oidc:alice"


def test_a_browser_sign_in_through_the_loopback_redirect_driven_by_chromium(env, tmp_path):  # noqa: F811
    """`kubectl portal login` without --device: the plugin opens the authorization URL (here a command
    that hands it to the test), headless Chromium signs in, and the portal redirects to the plugin's
    loopback listener with the code, which the plugin redeems with its PKCE verifier."""
    from test_ui_browser import UI, sign_in
    portal, standin = env
    k = Kubectl("1.33")
    plugin = Plugin(portal, k)
    handoff = tmp_path / "url"
    opener = tmp_path / "open.sh"
    opener.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {handoff}\n')
    opener.chmod(0o755)
    env_ = dict(k.env, KUBECTL_PORTAL_BROWSER=str(opener))
    p = subprocess.Popen([PLUGIN, "login", "--issuer", portal.issuer], env=env_, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    while not (handoff.exists() and handoff.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    url = handoff.read_text()
    assert url.startswith(portal.issuer + "/authorize?") and "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2Flocalhost%3A" in url
    ui = UI(portal, str(tmp_path / "chromium"), str(tmp_path / "shots"))
    try:
        ui.driver.get(url)
        sign_in(ui, "alice", PASSWORD)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "Signed in to" in err and "as alice" in err
        assert "Signed in. You can close this tab" in ui.driver.page_source
    finally:
        if p.poll() is None:
            p.kill()
        ui.quit()
    r = plugin.run("get-token", interactive=False)
    assert r.returncode == 0 and json.loads(r.stdout)["status"]["token"], r.stderr


def test_an_https_portal_with_a_private_ca(pki, tmp_path):  # noqa: F811
    """Against a portal serving TLS with a certificate from a private CA: refused (one line) without
    --certificate-authority, signed in with it."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    issuer = f"https://127.0.0.1:{port}"
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"issuer: {issuer}\nlisten: 127.0.0.1:{port}\ndata_dir: {tmp_path}/data\n"
                   f"tls:\n  certificate_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
                   "passwords:\n  bcrypt_cost: 10\n")
    assert subprocess.run([PORTAL_BIN, "user", "add", "alice", "--password-stdin", "--config", str(cfg)], input=PASSWORD + "\n",
                          capture_output=True, text=True).returncode == 0
    proc = subprocess.Popen([PORTAL_BIN, "serve", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ca = str(pki / "ca.crt")
    env = dict(os.environ, KUBECTL_PORTAL_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path))
    try:
        for _ in range(200):
            try:
                requests.get(issuer + "/readyz", verify=ca, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = subprocess.run([PLUGIN, "login", "--device", "--issuer", issuer], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "cannot reach" in r.stderr, r.stderr
        p = subprocess.Popen([PLUGIN, "login", "--device", "--issuer", issuer, "--certificate-authority", ca], env=env,
                             stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        code = re.search(r"enter the code ([A-Z]{4}-[A-Z]{4})", p.stderr.readline()).group(1)
        s = requests.Session()
        page = s.get(issuer + "/login", verify=ca)
        r = s.post(issuer + "/login", data={"csrf": csrf_of(page.text), "username": "alice", "password": PASSWORD}, verify=ca)
        assert r.status_code == 200, r.status_code
        page = s.get(issuer + "/device", params={"user_code": code}, verify=ca)
        s.post(issuer + "/device/decide", data={"csrf": csrf_of(page.text), "user_code": code, "decision": "approve"}, verify=ca)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        r = subprocess.run([PLUGIN, "get-token", "--issuer", issuer, "--certificate-authority", ca], env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)["status"]["token"], r.stderr
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
