"""Logs on a terminal are readable lines; anywhere else (and under PORTAL_LOG_FORMAT=json) JSON lines."""
import json
import os
import pty
import re
import secrets
import select
import subprocess
import time

import requests

from conftest import PORTAL_BIN, free_port

# Time, level, label, message, then key=value metadata.
READABLE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (INFO|NOTICE|WARNING|DEBUG) +[\w.-]+: .+")


def config(tmp_path, port, bind_password_file):
    # No log.format: the default (auto) decides. LDAP with a bind password that must never show.
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"""issuer: http://127.0.0.1:{port}
listen: 127.0.0.1:{port}
data_dir: {tmp_path}/data
passwords:
  bcrypt_cost: 10
ldap:
  urls: ["ldap://127.0.0.1:9"]
  bind_dn: cn=portal,dc=example,dc=org
  bind_password_file: {bind_password_file}
  user_search:
    base_dn: ou=people,dc=example,dc=org
  groups:
    mode: none
""")
    return str(cfg)


def run_until_ready(cmd, env, port, stderr):
    """Starts the portal, waits for /readyz, exercises a request with a request id, stops it."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            assert proc.poll() is None, "the portal exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        requests.post(f"http://127.0.0.1:{port}/login", data={"username": "x"})   # a CSRF failure: a warning with a request id
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def under_a_terminal(cmd, env, port):
    master, slave = os.openpty()
    out = b""
    try:
        import threading
        done = threading.Event()
        chunks = []

        def drain():
            while not done.is_set() or select.select([master], [], [], 0.2)[0]:
                if select.select([master], [], [], 0.2)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        run_until_ready(cmd, env, port, stderr=slave)
        time.sleep(0.3)
        done.set()
        t.join(timeout=5)
        out = b"".join(chunks)
    finally:
        os.close(slave)
        os.close(master)
    return out.decode().replace("\r\n", "\n")


def test_a_terminal_gets_readable_lines_and_a_pipe_gets_json(tmp_path):
    secret = "Sup3r-" + secrets.token_hex(12)
    pw = tmp_path / "bind"
    pw.write_text(secret + "\n")
    port = free_port()
    cmd = [PORTAL_BIN, "serve", "--config", config(tmp_path, port, pw)]
    env = dict(os.environ, PORTAL_LOG_LEVEL="debug")
    env.pop("PORTAL_LOG_FORMAT", None)

    text = under_a_terminal(cmd, env, port)
    lines = [l for l in text.splitlines() if l.strip()]
    listening = [l for l in lines if "portal listening" in l]
    assert listening and READABLE.match(listening[0]), text[-3000:]
    assert f"address=127.0.0.1:{port}" in listening[0] and " portal: portal listening" in listening[0]
    assert any(READABLE.match(l) and "request_id=" in l for l in lines), text[-3000:]
    assert not any(l.startswith("{") for l in lines), "JSON on a terminal"
    assert secret not in text

    # The same server with standard error to a file: JSON lines.
    log = tmp_path / "portal.log"
    with open(log, "w") as f:
        run_until_ready(cmd, env, port, stderr=f)
    records = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    assert any(r["msg"] == "portal listening" and r["address"] == f"127.0.0.1:{port}" for r in records)
    assert any("request_id" in r for r in records)
    assert secret not in log.read_text()

    # PORTAL_LOG_FORMAT=json keeps JSON even on a terminal.
    text = under_a_terminal(cmd, dict(env, PORTAL_LOG_FORMAT="json"), port)
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines and all(l.startswith("{") for l in lines), text[-2000:]
    assert any(json.loads(l).get("msg") == "portal listening" for l in lines)
    assert secret not in text
