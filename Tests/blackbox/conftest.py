"""Starts a real `portal serve` process on a loopback port with its own temp data dir."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import requests

PORTAL_BIN = os.environ.get("PORTAL_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/portal")
CALLBACK = "http://127.0.0.1:9/callback"
RP_SECRET = "rp-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Portal:
    """A `portal serve` process. With `database_url` several of them can share one PostgreSQL;
    `issuer` lets replicas share one issuer (as behind a load balancer)."""

    def __init__(self, extra_yaml="", issuer=None, database_url=None, expect_setup_link=True, env=None, issuer_host="127.0.0.1",
                 listen_host="127.0.0.1", database_options=""):
        self.dir = tempfile.mkdtemp(prefix="portal-bb-")
        self.port = free_port()
        # issuer_host="localhost" for Kerberos: browsers ask for a ticket for HTTP/<host in the URL>.
        self.issuer = issuer or f"http://{issuer_host}:{self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = os.path.join(self.dir, "portal.yaml")
        database = f"database:\n  url: {database_url}\n{database_options}" if database_url else ""
        with open(self.config, "w") as f:
            f.write(f"""
issuer: {self.issuer}
listen: {listen_host}:{self.port}
data_dir: {self.dir}/data
{database}log:
  format: json
passwords:
  bcrypt_cost: 10
login:
  max_failures_per_user: 5
  max_failures_per_address: 1000
clients:
  - id: rp-public
    name: Public test app
    public: true
    redirect_uris: ["{CALLBACK}"]
  - id: rp-confidential
    name: Confidential test app
    secret_env: RP_SECRET
    redirect_uris: ["{CALLBACK}"]
{extra_yaml}
""")
        self.env = dict(os.environ, RP_SECRET=RP_SECRET, **(env or {}))
        self.start(expect_setup_link)

    def start(self, expect_setup_link=False):
        self.log = open(os.path.join(self.dir, "portal.log"), "a")
        self.proc = subprocess.Popen([PORTAL_BIN, "serve", "--config", self.config], stdout=subprocess.PIPE,
                                     stderr=self.log, env=self.env, text=True)
        self.setup_url = None
        deadline = time.time() + 60
        if expect_setup_link:
            while time.time() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    break
                m = re.search(r"(http://\S+/setup\?token=\S+)", line)
                if m:
                    self.setup_url = m.group(1).replace(self.issuer, self.base)
                    break
            assert self.setup_url, "the portal did not print a setup link"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("portal exited:\n" + self.logs())
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("portal did not become ready")

    def cli(self, *args, stdin=None):
        return subprocess.run([PORTAL_BIN, *args, "--config", self.config], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=60)

    def kill(self):
        """SIGKILL: no graceful shutdown, connections cut mid-request."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code

    def logs(self):
        with open(os.path.join(self.dir, "portal.log")) as f:
            return f.read()


@pytest.fixture(scope="module")
def portal():
    p = Portal()
    yield p
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    assert code == 0, "portal did not shut down cleanly on SIGTERM"
