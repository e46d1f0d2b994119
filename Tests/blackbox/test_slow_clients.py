"""Slow clients (issue 13 §3): a bounded slowloris on loopback against a real `portal serve`.
Connections that never finish their request headers (or body) are closed after the configured
timeouts, idle kept-alive connections too, and normal requests are answered all along."""
import socket
import threading
import time

import requests

from conftest import Portal

LIMITS = """
server:
  header_timeout: 2s
  body_timeout: 2s
  idle_timeout: 3s
"""


def closed_within(sock, seconds):
    """True when the server closes `sock` within `seconds` (reads until EOF or reset)."""
    sock.settimeout(0.2)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            data = sock.recv(4096)
            if data == b"":
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def connect(p):
    return socket.create_connection(("127.0.0.1", p.port), timeout=5)


def test_half_sent_requests_are_dropped_and_others_are_still_served():
    p = Portal(extra_yaml=LIMITS)
    socks = []
    stop = threading.Event()
    try:
        # 50 connections that start a request and then dribble a header line every 0.5 s, forever.
        for _ in range(50):
            s = connect(p)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n")
            socks.append(s)

        def dribble():
            i = 0
            while not stop.is_set():
                for s in socks:
                    try:
                        s.sendall(b"X-Slow-%d: y\r\n" % i)
                    except OSError:
                        pass
                i += 1
                stop.wait(0.5)

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        # Meanwhile the portal answers everyone else.
        for _ in range(10):
            assert requests.get(p.base + "/healthz", timeout=2).status_code == 200
            time.sleep(0.1)
        # Every dribbling connection is closed a little after header_timeout (2 s), none answered.
        started = time.time()
        still_open = [s for s in socks if not closed_within(s, 6 - (time.time() - started))]
        assert not still_open, f"{len(still_open)} of 50 half-sent requests were still open after 6 s"
        assert requests.get(p.base + "/healthz", timeout=2).status_code == 200
    finally:
        stop.set()
        for s in socks:
            s.close()
        p.stop()


def test_silent_idle_and_slow_body_connections_are_closed():
    p = Portal(extra_yaml=LIMITS)
    try:
        silent = connect(p)                                   # connects, sends nothing
        assert closed_within(silent, 5)

        kept = connect(p)                                     # one request, then idles on keep-alive
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n")
        kept.settimeout(3)
        assert b"200" in kept.recv(4096).split(b"\r\n", 1)[0]
        t0 = time.time()
        assert closed_within(kept, 6)
        assert time.time() - t0 >= 2, "closed before the idle timeout"

        body = connect(p)                                     # headers complete, body never finishes
        body.sendall(b"POST /token HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1000\r\n\r\ngrant_type=")
        assert closed_within(body, 5)

        # A patient but complete client is still served on a fresh connection.
        ok = connect(p)
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n")
        ok.settimeout(3)
        assert ok.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        p.stop()


def test_timeouts_are_validated_by_check_config(tmp_path):
    cfg = tmp_path / "portal.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\nserver:\n  header_timeout: 0s\n  trusted_proxies: [\"10.0.0.0/33\", \"not-a-cidr\"]\n")
    from conftest import PORTAL_BIN
    import subprocess
    r = subprocess.run([PORTAL_BIN, "check-config", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "server.header_timeout" in r.stdout and "server.trusted_proxies" in r.stdout and "not-a-cidr" in r.stdout, r.stdout


def test_a_body_finished_after_the_response_leaves_no_connection_without_a_deadline():
    """GET with Content-Length: 1; the response goes out at once, the body byte arrives later, and
    then a next request is dribbled. The end of that body must arm the idle deadline, not clear it."""
    p = Portal(extra_yaml=LIMITS)
    try:
        s = connect(p)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\nContent-Length: 1\r\n\r\n")
        s.settimeout(3)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        s.sendall(b"x")                                   # the body ends after the response
        s.sendall(b"GET /healthz HTTP/1.1\r\n")         # and a next request starts, slowly
        t0 = time.time()
        closed = False
        while time.time() - t0 < 8 and not closed:
            try:
                s.sendall(b"X-Slow: y\r\n")
            except OSError:
                closed = True
                break
            closed = closed_within(s, 0.5)
        assert closed, "the connection outlived idle_timeout while a request head was dribbled"
    finally:
        p.stop()
