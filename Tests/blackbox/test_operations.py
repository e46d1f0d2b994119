"""Operating the portal: keys across restarts, encryption at rest, ES256, rotation, HTTPS, the example config."""
import os
import shutil
import sqlite3
import subprocess
import time

import requests

from conftest import PORTAL_BIN, Portal

KEK = "k" * 40


def signing_kids(p):
    return [k["kid"] for k in requests.get(p.issuer + "/keys").json()["keys"]]


def test_keys_survive_restart_and_are_encrypted_at_rest(tmp_path):
    os.environ["PORTAL_KEY_ENCRYPTION_KEY"] = KEK
    try:
        p = Portal()
        kids = signing_kids(p)
        assert len(kids) == 2  # the signing key and the next one, published ahead
        data = p.dir + "/data/portal.sqlite"
        assert p.stop() == 0
        rows = sqlite3.connect(data).execute("SELECT sealed_private_key FROM signing_keys").fetchall()
        assert rows and all(r[0].startswith("aesgcm:v2:") for r in rows)
        # Restart on the same database: the same keys, not new ones.
        shutil.copy(p.config, tmp_path / "portal.yaml")
        p2 = Portal.__new__(Portal)
        p2.__dict__.update(p.__dict__)
        p2.log = open(os.path.join(p.dir, "portal2.log"), "w")
        p2.proc = subprocess.Popen([PORTAL_BIN, "serve", "--config", p.config], stdout=subprocess.DEVNULL, stderr=p2.log,
                                   env=p.env)
        import time
        for _ in range(100):
            try:
                if requests.get(p.issuer + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert signing_kids(p2) == kids
        assert p2.stop() == 0
        # With the wrong key-encryption key the portal refuses to start, and says why.
        env = dict(p.env, PORTAL_KEY_ENCRYPTION_KEY="w" * 40)
        r = subprocess.run([PORTAL_BIN, "serve", "--config", p.config], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode != 0 and "another key-encryption key" in r.stderr
    finally:
        del os.environ["PORTAL_KEY_ENCRYPTION_KEY"]


def test_es256_by_configuration_and_forced_rotation():
    p = Portal(extra_yaml="signing:\n  algorithm: ES256\n  check_interval: 1s\n")
    try:
        keys = requests.get(p.issuer + "/keys").json()["keys"]
        assert {k["kty"] for k in keys} == {"EC"} and {k["alg"] for k in keys} == {"ES256"}
        meta = requests.get(p.issuer + "/.well-known/openid-configuration").json()
        assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
        before = p.cli("keys", "list").stdout.splitlines()
        signing_before = [l.split("\t")[0] for l in before if "\tsigning\t" in l]
        nxt = [l.split("\t")[0] for l in before if "\tnext\t" in l]
        assert len(signing_before) == 1 and len(nxt) == 1
        # A routine rotation: the next key was published seconds ago, so it waits (publish_ahead, 1 h).
        r = p.cli("keys", "rotate")
        assert r.returncode == 0, r.stderr
        assert f"key {nxt[0]} will sign at" in r.stdout, r.stdout
        after = p.cli("keys", "list").stdout.splitlines()
        assert [l.split("\t")[0] for l in after if "\tsigning\t" in l] == signing_before
        # An emergency rotation: a brand-new key signs now, every earlier key leaves JWKS at once.
        r = p.cli("keys", "rotate", "--emergency")
        assert r.returncode == 0 and "EMERGENCY rotation" in r.stdout and "left JWKS" in r.stdout, r.stdout
        after = p.cli("keys", "list").stdout.splitlines()
        signing_after = [l.split("\t")[0] for l in after if "\tsigning\t" in l]
        assert len(signing_after) == 1 and signing_after[0] not in signing_before + nxt
        time.sleep(2.5)   # the running server re-reads keys every check_interval
        published = [k["kid"] for k in requests.get(p.issuer + "/keys").json()["keys"]]
        assert signing_after[0] in published and not set(published) & set(signing_before + nxt)
        assert "UNENCRYPTED" in after[0]
        audit = p.cli("audit", "--type", "admin.keys.rotate").stdout
        assert "admin.keys.rotate" in audit and "emergency" in audit
    finally:
        assert p.stop() == 0


def test_https_issuer_with_a_configured_certificate(tmp_path):
    key, crt = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    p = Portal.__new__(Portal)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"issuer: https://localhost:{port}\nlisten: 127.0.0.1:{port}\ndata_dir: {tmp_path}/data\n"
                   f"tls:\n  certificate_file: {crt}\n  key_file: {key}\n")
    proc = subprocess.Popen([PORTAL_BIN, "serve", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        for _ in range(200):
            try:
                r = requests.get(f"https://localhost:{port}/.well-known/openid-configuration", verify=str(crt), timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json()["issuer"] == f"https://localhost:{port}"
        page = requests.get(f"https://localhost:{port}/login", verify=str(crt))
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "__Host-portal_browser=" in page.headers["Set-Cookie"] and "Secure" in page.headers["Set-Cookie"]
        # Plain HTTP on the TLS port does not work.
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            assert False, "plain HTTP answered on the TLS port"
        except requests.exceptions.RequestException:
            pass
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_example_configuration_is_valid():
    example = os.path.join(os.path.dirname(__file__), "../../deploy/portal.example.yaml")
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", example], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_endpoint_counts_logins_tokens_and_requests():
    import re
    p = Portal()
    try:
        s = requests.Session()
        page = s.get(p.base + "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        s.post(p.base + "/login", data={"csrf": csrf, "username": "nobody", "password": "wrong-password"})
        requests.post(p.base + "/token", data={"grant_type": "refresh_token", "refresh_token": "x" * 43, "client_id": "rp-public"})
        r = requests.get(p.base + "/metrics")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.text
        assert re.search(r'portal_logins_total\{.*result="failure".*\} 1', text) or \
            re.search(r'portal_logins_total\{.*method="password".*\} 1', text), text
        assert "http_server_request_duration_bucket{" in text and "hb_requests{" in text
        # The event-loop probe runs (every 20 ms per loop): its histogram has samples.
        lag = re.search(r'^portal_event_loop_lag_seconds_count (\d+)', text, re.M)
        assert lag and int(lag.group(1)) > 0, text
        assert 'portal_audit_events_total{' in text
    finally:
        assert p.stop() == 0


def test_json_log_lines_carry_the_documented_request_id(portal):
    r = requests.get(portal.base + "/no-such-page")
    rid = r.headers["X-Request-Id"]
    assert r.status_code == 404 and rid in r.text
    import json as _json
    lines = [_json.loads(l) for l in portal.logs().splitlines() if l.startswith("{")]
    mine = [l for l in lines if l.get("request_id") == rid]
    assert mine and mine[-1]["path"] == "/no-such-page", lines[-3:]
    assert not any("hb.request.id" in l for l in lines), "the internal key name leaked into the log"
