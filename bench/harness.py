#!/usr/bin/env python3
"""The benchmark suite's harness: the load generator (wrk with scenario.lua), process figures from /proc,
the reference limits, a portal under test and its refresh chains. Used by suite.py and costs.py."""
import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import zlib

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "scenario.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench password with some length 1234"
REDIRECT = "http://localhost:8000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def log(msg):
    print(msg, file=sys.stderr, flush=True)



# ---------------------------------------------------------------- process figures

class Proc:
    """CPU time and memory of a running process from /proc."""

    def __init__(self, pid):
        self.pid = pid

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def status_kb(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mb(self):
        return self.status_kb("VmRSS") / 1024

    def peak_mb(self):
        return self.status_kb("VmHWM") / 1024

    def reset_peak(self):
        # Linux ≥ 4.0: writing 5 resets VmHWM to the current RSS.
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False



# ---------------------------------------------------------------- load generators

def machine_times():
    """System-wide CPU times from /proc/stat: (total, idle + iowait, steal) in ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4], v[7]



def wrk(url, seconds, connections, threads, env, proc=None):
    """Runs wrk with scenario.lua; returns the RESULT dict plus rps, cpu per 1000, peak RSS, and the
    share of the machine's CPU time that was idle and that the hypervisor took (steal) meanwhile."""
    e = dict(os.environ, THREADS=str(threads), **env)
    if proc:
        proc.reset_peak()
        cpu0 = proc.cpu_seconds()
    m0 = machine_times()
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", LUA, url],
                         capture_output=True, text=True, env=e, timeout=seconds + 60)
    m = re.search(r"^RESULT (\{.*\})$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    m1 = machine_times()
    total = max(m1[0] - m0[0], 1)
    r["idle_pct"], r["steal_pct"] = 100 * (m1[1] - m0[1]) / total, 100 * (m1[2] - m0[2]) / total
    if proc:
        cpu = proc.cpu_seconds() - cpu0
        r["cpu_per_1000"] = cpu / max(r["requests"], 1) * 1000
        r["peak_rss_mb"] = proc.peak_mb()
    for k in ("p50", "p90", "p99", "p999", "max"):
        r[k] = r[k] / 1000.0  # ms
    return r



def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]



# ---------------------------------------------------------------- reference limits

def openssl_speed(algorithm, seconds, cores):
    """Signatures per second with `openssl speed -multi <cores>` (all cores, like the server)."""
    cmd = ["openssl", "speed", "-seconds", str(seconds)]
    if cores > 1:
        cmd += ["-multi", str(cores)]
    cmd.append(algorithm)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 60).stdout
    if algorithm.startswith("rsa"):
        rows = re.findall(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out, re.M)
    else:
        rows = re.findall(r"^\s*256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if not rows:
        raise RuntimeError(f"cannot parse openssl speed output:\n{out}")
    return float(rows[-1][0])



# ---------------------------------------------------------------- the portal under test

class Portal:
    def __init__(self, binary, workdir, name, algorithm, database_url, bcrypt_cost):
        self.bin = binary
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.webhook_token = secrets.token_hex(24)
        with open(os.path.join(self.dir, "webhook.token"), "w") as f:
            f.write(self.webhook_token)
        database = f"database:\n  url: {database_url}\n" if database_url else ""
        self.config = os.path.join(self.dir, "portal.yaml")
        with open(self.config, "w") as f:
            f.write(f"""issuer: {self.base}
listen: 127.0.0.1:{self.port}
data_dir: {self.dir}/data
{database}log: {{level: warning}}
signing: {{algorithm: {algorithm}}}
passwords: {{bcrypt_cost: {bcrypt_cost}}}
login:
  max_failures_per_address: 100000
webhook:
  bearer_token_file: {self.dir}/webhook.token
""")
        self.cli("user", "add", "bench", "--password-stdin", "--email", "bench@example.org", "--name", "Bench User",
                 "--group", "dev", "--group", "ops", stdin=PASSWORD + "\n")
        self.cli("robot", "add", "bench", "--team", "bench", "--group", "deployers")
        self.credential = self.cli("credential", "create", "--robot", "bench", "--name", "bench", "--expires", "1d").strip()
        assert self.credential.startswith("kpc_"), self.credential
        self.log = open(os.path.join(self.dir, "portal.log"), "w")
        self.proc = subprocess.Popen(os.environ.get("PORTAL_WRAP", "").split() + [self.bin, "serve", "--config", self.config], stdout=subprocess.DEVNULL, stderr=self.log)
        self.stats = Proc(self.proc.pid)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("portal exited:\n" + open(os.path.join(self.dir, "portal.log")).read())
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                raise RuntimeError("portal did not become ready")
            time.sleep(0.1)

    def cli(self, *args, stdin=None):
        r = subprocess.run([self.bin, *args, "--config", self.config], input=stdin, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"portal {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    # -- the code flow, as kubectl's oidc-login plugin runs it

    def authorize_url(self, verifier):
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        q = urllib.parse.urlencode({"response_type": "code", "client_id": "kubernetes", "redirect_uri": REDIRECT,
                                    "scope": "openid profile email groups offline_access", "state": secrets.token_urlsafe(12),
                                    "code_challenge": challenge, "code_challenge_method": "S256"})
        return f"{self.base}/authorize?{q}"

    def redeem(self, session, location, verifier):
        code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
        r = session.post(self.base + "/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                                     "client_id": "kubernetes", "code_verifier": verifier})
        if r.status_code != 200:
            raise RuntimeError(f"code redemption failed: {r.status_code} {r.text}")
        return r.json()

    def password_login(self, session):
        """A full login: /authorize → login page → password (bcrypt) → /authorize → code → /token."""
        verifier = secrets.token_urlsafe(48)
        r = session.get(self.authorize_url(verifier), allow_redirects=False)
        if r.status_code != 302:
            raise RuntimeError(f"/authorize: {r.status_code}")
        login = urllib.parse.urljoin(self.base, r.headers["Location"])
        page = session.get(login)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        req = urllib.parse.parse_qs(urllib.parse.urlparse(login).query)["req"][0]
        r = session.post(self.base + "/login", data={"csrf": csrf, "req": req, "username": "bench", "password": PASSWORD},
                         allow_redirects=False)
        if r.status_code != 303:
            raise RuntimeError(f"/login: {r.status_code} {r.text[:300]}")
        location = r.headers["Location"]
        if not location.startswith(REDIRECT):  # back through /authorize first
            r = session.get(urllib.parse.urljoin(self.base, location), allow_redirects=False)
            location = r.headers.get("Location", "")
        if "code=" not in location:
            raise RuntimeError(f"no code after login: {r.status_code} {location}")
        return self.redeem(session, location, verifier)

    def sso_tokens(self, session):
        """Another token set for an already signed-in browser session (no password)."""
        verifier = secrets.token_urlsafe(48)
        r = session.get(self.authorize_url(verifier), allow_redirects=False)
        if r.status_code != 302 or "code=" not in r.headers.get("Location", ""):
            raise RuntimeError(f"/authorize with a session: {r.status_code} {r.headers.get('Location')}")
        return self.redeem(session, r.headers["Location"], verifier)



B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def credential_token(cid, secret):
    """A well-formed application credential (valid CRC-32 checksum) for any id and secret."""
    body = f"kpc_{cid}_{secret}"
    n = zlib.crc32(body.encode())
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = B62[r] + digits
    return body + digits.rjust(6, "0")



def refresh_form(token):
    return {"grant_type": "refresh_token", "refresh_token": token, "client_id": "kubernetes"}



def chains(portal, session, n, path):
    with open(path, "w") as f:
        for _ in range(n):
            f.write(portal.sso_tokens(session)["refresh_token"] + "\n")



def refresh_load(portal, session, path, args):
    """The refresh scenario: one chain of single-use refresh tokens per connection."""
    chains(portal, session, args.connections, path)
    return wrk(portal.base + "/token", args.duration, args.connections, args.threads, {
        "CHAIN_FILE": path, "CHAIN_BODY": "grant_type=refresh_token&client_id=kubernetes&refresh_token=%s",
        "CONTENT_TYPE": "application/x-www-form-urlencoded"}, portal.stats)



def clean(r):
    return not (r.get("wrong") or r.get("status_errors") or r.get("socket_errors") or r.get("broken_chains"))
