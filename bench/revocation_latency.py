#!/usr/bin/env python3
"""How fast a revocation on replica A reaches the TokenReview cache of replica B (issue 19).

Two `portal serve` replicas share one PostgreSQL (PORTAL_TEST_POSTGRES_URL: bench/revocation_latency.sh
starts a private one). While wrk sends TokenReviews for a valid, cached robot credential to B without
pause, each trial:
  1. reviews a person's credential twice on B (verified, then answered from B's memory);
  2. revokes it on A over HTTP (POST /credentials/revoke, confirm=yes) — or, with --mode rotate,
     rotates it on A with overlap 0 (the old secret must be refused);
  3. polls B every 1 ms until B refuses it (authenticated:false for that reason).
The delay is measured from the moment A's answer arrived and from the moment the request was sent
(both to the arrival of B's first refusal). With --mode revoke the credentials are made beforehand
over HTTP (POST /credentials, GET /shown/<id>), one per trial.

Prints trials, p50/p99/worst, how many took over 100 ms, and B's review throughput meanwhile.
Exit status 1 when a trial was never refused within 5 s (or a precondition failed), 2 when the load's own
credential was refused on B at any time (wrong answers under load), 0 otherwise.
Not part of the test suite; the figures depend on the machine (everything shares its cores)."""
import argparse
import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "blackbox"))

import requests  # noqa: E402

from conftest import Portal  # noqa: E402

PASSWORD = "revocation-latency-password-1"
WEBHOOK_TOKEN = secrets.token_hex(24)
LUA = os.path.join(HERE, "scenario.lua")
GIVE_UP = 5.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return 0.0
    return v[max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))]


def review_body(token):
    return json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})


class Reviewer:
    """TokenReviews over one keep-alive connection."""

    def __init__(self, portal):
        self.url = portal.base + "/webhook/tokenreview"
        self.s = requests.Session()
        self.s.headers.update({"Authorization": "Bearer " + WEBHOOK_TOKEN, "Content-Type": "application/json"})
        self.count = 0

    def status(self, token):
        r = self.s.post(self.url, data=review_body(token), timeout=10)
        self.count += 1
        if r.status_code != 200:
            raise RuntimeError(f"review answered {r.status_code}: {r.text[:300]}")
        return r.json()["status"]


def csrf_of(text):
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    if not m:
        raise RuntimeError("no CSRF field")
    return m.group(1)


def login(p, user):
    s = requests.Session()
    page = s.get(p.base + "/login")
    r = s.post(p.base + "/login", data={"csrf": csrf_of(page.text), "username": user, "password": PASSWORD}, allow_redirects=False)
    if r.status_code != 303 or r.headers["Location"].startswith("/login"):
        raise RuntimeError(f"sign-in failed: {r.status_code} {r.headers}")
    return s


def shown_token(p, s, location):
    r = s.get(p.base + location)
    m = re.search(r"kpc_[A-Za-z0-9_]+", html.unescape(r.text))
    if r.status_code != 200 or not m:
        raise RuntimeError(f"no token at {location}: {r.status_code}")
    return m.group(0)


def create_credential(p, s, csrf, name):
    r = s.post(p.base + "/credentials", data={"csrf": csrf, "name": name, "expires": "86400"}, allow_redirects=False)
    if r.status_code != 303 or not r.headers["Location"].startswith("/shown/"):
        raise RuntimeError(f"POST /credentials answered {r.status_code} {r.headers.get('Location')}")
    return shown_token(p, s, r.headers["Location"])


def cid_of(token):
    return token.split("_")[1]


def psql(binary, url, sql):
    return subprocess.run([binary, url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


class Load:
    """wrk against B's webhook with one valid robot credential until stopped (SIGINT: wrk reports and exits)."""

    def __init__(self, b, token, connections, threads):
        env = dict(os.environ, THREADS=str(threads), METHOD="POST", CONTENT_TYPE="application/json",
                   AUTHORIZATION="Bearer " + WEBHOOK_TOKEN, BODY=review_body(token), EXPECT='"authenticated":true')
        self.proc = subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", "-d3600s", "--timeout", "5s", "-s", LUA,
                                      b.base + "/webhook/tokenreview"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        m = re.search(r"^RESULT (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk printed no result:\n{out}\n{err}")
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        return r


def trial_revoke(a, alice, csrf, token, poll):
    """Revokes `token` on A over HTTP, then waits for B to refuse it (see wait_refused)."""
    t_send = time.perf_counter()
    r = alice.post(a.base + "/credentials/revoke", data={"csrf": csrf, "id": cid_of(token), "confirm": "yes"}, allow_redirects=False)
    t_answer = time.perf_counter()
    if r.status_code != 303 or r.headers.get("Location") != "/credentials":
        raise RuntimeError(f"revoke on A answered {r.status_code} {r.headers}")
    return wait_refused(token, t_send, t_answer, poll, "credential revoked")


def wait_refused(token, t_send, t_answer, poll, reason):
    """Polls B every 1 ms from A's answer: (from the answer, from the request, polls, stale) in s, None after 5 s."""
    polls = 0
    nxt = t_answer
    stale = 0.0  # when the last poll B still accepted was sent, after A's answer: B answered from a stale state at least this long
    while True:
        sent = time.perf_counter()
        st = poll.status(token)
        now = time.perf_counter()
        polls += 1
        if not st["authenticated"]:
            if reason not in st.get("error", ""):
                raise RuntimeError(f"refused on B for another reason: {st}")
            return now - t_answer, now - t_send, polls, stale
        stale = sent - t_answer
        if now - t_answer > GIVE_UP:
            return None
        nxt += 0.001
        if nxt > now:
            time.sleep(nxt - now)
        else:
            nxt = now


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--mode", choices=["revoke", "rotate"], default="revoke")
    ap.add_argument("--cache-ttl", default="10s", help="webhook.cache_ttl of both replicas (the default is 10s)")
    ap.add_argument("--connections", type=int, default=4, help="wrk connections loading B")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    pg = os.environ.get("PORTAL_TEST_POSTGRES_URL")
    if not pg:
        sys.exit("PORTAL_TEST_POSTGRES_URL is not set (bench/revocation_latency.sh starts a PostgreSQL)")

    name = "portal_revlat_" + uuid.uuid4().hex[:10]
    psql(args.psql, pg, f"CREATE DATABASE {name}")
    database = pg.rsplit("/", 1)[0] + "/" + name
    work = tempfile.mkdtemp(prefix="revlat-")
    with open(os.path.join(work, "webhook-token"), "w") as f:
        f.write(WEBHOOK_TOKEN + "\n")
    extra = f"webhook:\n  bearer_token_file: {work}/webhook-token\n  cache_ttl: {args.cache_ttl}\n"
    env = {"PORTAL_LOG_LEVEL": "warning"}
    portals = []
    try:
        a = Portal(extra_yaml=extra, database_url=database, env=env)
        portals.append(a)
        b = Portal(extra_yaml=extra, issuer=a.issuer, database_url=database, expect_setup_link=False, env=env)
        portals.append(b)
        return run(args, a, b)
    finally:
        for p in portals:
            p.stop()
        psql(args.psql, pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(args, a, b):
    for cmd in (["user", "add", "alice", "--password-stdin", "--group", "dev"], ["robot", "add", "load", "--team", "bench"]):
        r = a.cli(*cmd, stdin=PASSWORD + "\n")
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    r = a.cli("credential", "create", "--robot", "load", "--name", "load", "--expires", "1d")
    load_token = re.search(r"kpc_\S+", r.stdout).group(0)
    alice = login(a, "alice")
    csrf = csrf_of(alice.get(a.base + "/credentials").text)
    poll = Reviewer(b)

    tokens = []
    if args.mode == "revoke":
        started = time.time()
        for i in range(args.trials):
            tokens.append(create_credential(a, alice, csrf, f"trial-{i}"))
            if (i + 1) % 200 == 0:
                log(f"  {i + 1} credentials made ({time.time() - started:.0f} s)")
    else:
        tokens.append(create_credential(a, alice, csrf, "rotated"))

    if poll.status(load_token)["authenticated"] is not True:
        raise RuntimeError("the load credential is not valid on B")
    load = Load(b, load_token, args.connections, args.threads)
    time.sleep(1.0)
    if load.proc.poll() is not None:
        raise RuntimeError("wrk exited: " + load.proc.stderr.read())
    log(f"==> {args.trials} trials ({args.mode} on A, poll B every 1 ms), wrk -c{args.connections} -t{args.threads} loading B")

    from_answer, from_send, polls, stales, lost = [], [], [], [], []
    poll.count = 0
    t0 = time.perf_counter()
    current = tokens[0]
    for i in range(args.trials):
        token = tokens[i] if args.mode == "revoke" else current
        for _ in range(2):
            st = poll.status(token)
            if st["authenticated"] is not True:
                raise RuntimeError(f"trial {i}: the credential is not valid on B before the change: {st}")
        if args.mode == "revoke":
            got = trial_revoke(a, alice, csrf, token, poll)
        else:
            t_send = time.perf_counter()
            r = alice.post(a.base + "/credentials/rotate", data={"csrf": csrf, "id": cid_of(token), "overlap": "0", "confirm": "yes"},
                           allow_redirects=False)
            t_answer = time.perf_counter()
            if r.status_code != 303 or not r.headers.get("Location", "").startswith("/shown/"):
                raise RuntimeError(f"rotate on A answered {r.status_code} {r.headers}")
            got = wait_refused(token, t_send, t_answer, poll, "unknown credential")
            current = shown_token(a, alice, r.headers["Location"])
        if got is None:
            lost.append(i)
            log(f"  trial {i}: B still accepted the old credential {GIVE_UP:.0f} s after A's answer")
            continue
        from_answer.append(got[0])
        from_send.append(got[1])
        polls.append(got[2])
        stales.append(got[3])
        if (i + 1) % 100 == 0:
            log(f"  {i + 1} trials, worst so far {max(from_answer) * 1000:.1f} ms")
    elapsed = time.perf_counter() - t0
    ours = poll.count
    wrk = load.stop()

    ms = lambda v: v * 1000  # noqa: E731
    over = sum(1 for d in from_answer if d > 0.1)
    over_send = sum(1 for d in from_send if d > 0.1)
    first = sum(1 for n in polls if n == 1)
    figures = {
        "mode": args.mode, "trials": args.trials, "refused": len(from_answer), "never_refused_within_5s": len(lost),
        "cache_ttl": args.cache_ttl, "binary": os.environ.get("PORTAL_BIN", ""),
        "from_answer_ms": {"p50": ms(pct(from_answer, 50)), "p99": ms(pct(from_answer, 99)), "max": ms(max(from_answer, default=0))},
        "from_send_ms": {"p50": ms(pct(from_send, 50)), "p99": ms(pct(from_send, 99)), "max": ms(max(from_send, default=0))},
        "over_100ms_from_answer": over, "over_100ms_from_send": over_send, "refused_at_first_poll": first,
        "stale_accepts": {"trials": sum(1 for n in polls if n > 1), "worst_ms_at_least": ms(max(stales, default=0))},
        "b_reviews_per_s_wrk": wrk["rps"], "b_reviews_per_s_total": (wrk["requests"] + ours) / elapsed,
        "wrk": {k: wrk[k] for k in ("requests", "p50", "p99", "max", "status_errors", "socket_errors", "wrong")},  # latencies in µs
        "seconds": elapsed,
    }
    print(f"revocation latency, A → B ({args.mode} on A over HTTP, B polled every 1 ms, cache_ttl {args.cache_ttl}, "
          f"{os.path.basename(os.environ.get('PORTAL_BIN', 'portal'))} {figures['binary']})")
    print(f"  trials                       {args.trials} ({len(from_answer)} refused, {len(lost)} never within {GIVE_UP:.0f} s)")
    for label, key in (("from A's answer", "from_answer_ms"), ("from the request sent", "from_send_ms")):
        f = figures[key]
        print(f"  {label:<28} p50 {f['p50']:.2f} ms   p99 {f['p99']:.2f} ms   worst {f['max']:.2f} ms")
    print(f"  over 100 ms                  {over} from A's answer, {over_send} from the request sent")
    print(f"  refused at the first poll    {first} of {len(polls)} (B had the change before it handled the first poll "
          f"sent after A's answer; the rest of the delay is that poll's round trip through the loaded B)")
    print(f"  accepted after A's answer    in {len(polls) - first} trials; the last such poll was sent at worst "
          f"{figures['stale_accepts']['worst_ms_at_least']:.2f} ms after A's answer")
    print(f"  B's review throughput        {wrk['rps']:.0f}/s from wrk (-c{args.connections}, p50 {wrk['p50'] / 1000:.2f} ms, "
          f"p99 {wrk['p99'] / 1000:.2f} ms, max {wrk['max'] / 1000:.0f} ms), {figures['b_reviews_per_s_total']:.0f}/s with the trials' own reviews, over {elapsed:.1f} s")
    if wrk["wrong"] or wrk["status_errors"] or wrk["socket_errors"]:
        print(f"  WARNING: wrk saw {wrk['wrong']} wrong answers (the load credential refused), {wrk['status_errors']} status errors, "
              f"{wrk['socket_errors']} socket errors")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if lost:
        return 1
    return 2 if wrk["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
