#!/usr/bin/env python3
"""Portal benchmark suite: scenarios over keep-alive connections (wrk), reference limits measured
in the same run, targets checked as ratios to those limits. Run it through bench/run.sh. The harness
(wrk, /proc figures, the portal under test) is in harness.py, the cost break-downs in costs.py,
the targets and the Markdown in report.py.

Prints one table per backend and writes the same as Markdown and JSON (--out-dir).
PORTAL_WRAP="heaptrack -o /tmp/h" (or any command prefix) wraps every `portal serve` it starts,
for profiling a scenario; figures taken that way are not comparable."""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

from costs import fresh_database, ladder, rotation_alone, sqlite_floor, warm_wal
from report import markdown, targets
from harness import (HERE, Portal, Proc, chains, clean, credential_token, free_port, log, openssl_speed, percentile, refresh_form,
                     refresh_load, wrk)


def refresh_pairs(portals, algorithm, args, work):
    """PostgreSQL's refresh rate against SQLite's, measured back to back: `args.pairs` rounds, each the
    two backends' refresh load one right after the other (which goes first alternates), so a pair's
    two figures are seconds apart on a VM whose speed drifts by a third within minutes. The target
    takes the median of the pairs' ratios."""
    out = []
    sessions = {label: requests.Session() for label in portals}
    for label, p in portals.items():
        p.password_login(sessions[label])
    for i in range(args.pairs):
        order = list(portals) if i % 2 == 0 else list(reversed(portals))
        pair = {}
        for label in order:
            r = refresh_load(portals[label], sessions[label], os.path.join(work, f"pair-{label}-{algorithm}-{i}.txt"), args)
            pair[label] = {k: r.get(k) for k in ("rps", "p99", "cpu_per_1000", "idle_pct", "steal_pct",
                                                  "wrong", "status_errors", "socket_errors", "broken_chains")}
        pair["ratio"] = pair["postgres"]["rps"] / max(pair["sqlite"]["rps"], 1e-9)
        log(f"   pair {i + 1} {algorithm}: SQLite {pair['sqlite']['rps']:.0f}/s, PostgreSQL {pair['postgres']['rps']:.0f}/s"
            f" = {100 * pair['ratio']:.0f} % (steal {pair['sqlite']['steal_pct']:.1f} / {pair['postgres']['steal_pct']:.1f} %)")
        out.append(pair)
    return out



def static_pairs(portal, args):
    """Discovery and JWKS against hello-world, back to back: `args.pairs` rounds of the three loads
    seconds apart (half the scenario length each), so a slow minute of the VM hits both sides of a
    ratio (docs/performance.md, ninth steps). The targets take the median of the rounds' ratios."""
    secs = max(3, args.duration // 2)
    out = []
    for i in range(args.pairs):
        h = wrk(args.hello_url, secs, args.connections, args.threads, {"EXPECT": "hello"})
        d = wrk(portal.base + "/.well-known/openid-configuration", secs, args.connections, args.threads, {"EXPECT": '"issuer"'})
        j = wrk(portal.base + "/keys", secs, args.connections, args.threads, {"EXPECT": '"keys"'})
        pair = {"hello": h["rps"], "discovery": d["rps"], "jwks": j["rps"], "clean": clean(h) and clean(d) and clean(j),
                "steal_pct": max(h["steal_pct"], d["steal_pct"], j["steal_pct"])}
        hello = max(h["rps"], 1e-9)
        log(f"   static pair {i + 1}: hello {h['rps']:.0f}/s, discovery {d['rps']:.0f}/s = {100 * d['rps'] / hello:.0f} %,"
            f" JWKS {j['rps']:.0f}/s = {100 * j['rps'] / hello:.0f} % (steal ≤ {pair['steal_pct']:.1f} %)")
        out.append(pair)
    return out



def run_login(portal, seconds, concurrency):
    """Full password logins through the code flow, `concurrency` browsers at a time."""
    stop = time.time() + seconds
    times, failures = [], []
    lock = threading.Lock()

    def worker():
        while time.time() < stop:
            t0 = time.perf_counter()
            try:
                tokens = portal.password_login(requests.Session())
                ok = "id_token" in tokens and "refresh_token" in tokens
            except Exception as e:  # noqa: BLE001 - counted and reported
                ok = False
                with lock:
                    failures.append(str(e))
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    times.append(dt)

    portal.stats.reset_peak()
    cpu0 = portal.stats.cpu_seconds()
    start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    cpu = portal.stats.cpu_seconds() - cpu0
    times.sort()
    n = len(times)
    return {"requests": n, "rps": n / elapsed, "p50": percentile(times, 50) * 1000, "p99": percentile(times, 99) * 1000,
            "p999": percentile(times, 99.9) * 1000, "cpu_per_1000": cpu / max(n, 1) * 1000, "peak_rss_mb": portal.stats.peak_mb(),
            "wrong": len(failures), "status_errors": 0, "socket_errors": 0, "broken_chains": 0,
            "note": f"{concurrency} browsers; 6 HTTP requests per login" + (f"; first failure: {failures[0]}" if failures else "")}



def run_parallel_refresh(portal, session, rounds):
    """Ten refreshes of ONE token at the same instant, repeated: every answer must carry the same
    successor (grace window), the successor must work once, and replaying the original after that
    must revoke the family."""
    sessions = [requests.Session() for _ in range(10)]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=10)
    latencies, bad = [], []
    for i in range(rounds):
        token = portal.sso_tokens(session)["refresh_token"]
        barrier = threading.Barrier(10)

        def one(s):
            barrier.wait()
            t0 = time.perf_counter()
            r = s.post(portal.base + "/token", data=refresh_form(token))
            return r.status_code, (r.json().get("refresh_token") if r.status_code == 200 else r.text), time.perf_counter() - t0

        results = list(pool.map(one, sessions))
        latencies += [dt for _, _, dt in results]
        statuses = {st for st, _, _ in results}
        successors = {body for st, body, _ in results if st == 200}
        if statuses != {200} or len(successors) != 1:
            bad.append(f"round {i}: statuses {sorted(statuses)}, {len(successors)} distinct successors")
            continue
        successor = successors.pop()
        r = sessions[0].post(portal.base + "/token", data=refresh_form(successor))
        if r.status_code != 200:
            bad.append(f"round {i}: successor refused: {r.status_code} {r.text}")
            continue
        third = r.json()["refresh_token"]
        # The original again, after its successor was used: a replay, the family dies.
        r = sessions[0].post(portal.base + "/token", data=refresh_form(token))
        if r.status_code != 400 or r.json().get("error") != "invalid_grant":
            bad.append(f"round {i}: replay after rotation answered {r.status_code}")
            continue
        r = sessions[0].post(portal.base + "/token", data=refresh_form(third))
        if r.status_code != 400:
            bad.append(f"round {i}: family survived a replay ({r.status_code})")
    pool.shutdown()
    latencies.sort()
    return {"rounds": rounds, "bad_rounds": len(bad), "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000, "p999": percentile(latencies, 99.9) * 1000,
            "first_problem": bad[0] if bad else ""}



def run_plugin_refresh(portal, plugin, session, seconds):
    """kubectl-portal get-token with a stale cache, one after another: what one kubectl invocation
    pays when its token has expired (process start, cache lock, discovery, refresh, atomic write)."""
    import hashlib
    import subprocess
    import tempfile
    cache_dir = tempfile.mkdtemp(prefix="bench-plugin-")
    key = hashlib.sha256(f"{portal.base}\nkubernetes".encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, key + ".json")
    t = portal.sso_tokens(session)
    cache = {"issuer": portal.base, "client_id": "kubernetes", "id_token": t["id_token"], "refresh_token": t["refresh_token"],
             "expiry": 0, "refresh_expiry": 0}
    env = dict(os.environ, KUBECTL_PORTAL_CACHE_DIR=cache_dir,
               KUBERNETES_EXEC_INFO='{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}')
    times, failures = [], []
    cpu0 = portal.stats.cpu_seconds()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        with open(path, "w") as f:
            json.dump(cache, f)
        t0 = time.perf_counter()
        r = subprocess.run([plugin, "get-token", "--issuer", portal.base], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            failures.append(r.stderr.strip())
            break
        with open(path) as f:
            cache = json.load(f)
        cache["expiry"] = 0
    cpu = portal.stats.cpu_seconds() - cpu0
    elapsed = sum(times)
    times.sort()
    n = len(times)
    return {"requests": n, "rps": n / max(elapsed, 1e-9), "p50": percentile(times, 50) * 1000, "p99": percentile(times, 99) * 1000,
            "p999": percentile(times, 99.9) * 1000, "cpu_per_1000": cpu / max(n, 1) * 1000, "peak_rss_mb": portal.stats.peak_mb(),
            "wrong": len(failures), "status_errors": 0, "socket_errors": 0, "broken_chains": 0,
            "note": "one process at a time; latency is a whole kubectl-portal run (start, lock, discovery, refresh, write)"
            + (f"; first failure: {failures[0]}" if failures else "")}



def scenarios(portal, label, algorithm, args, work):
    """Runs every scenario against one portal; returns rows."""
    rows = []
    s = requests.Session()
    first = portal.password_login(s)  # also warms the code paths
    assert first["id_token"].count(".") == 2
    conns, threads, secs = args.connections, args.threads, args.duration

    def add(name, r, **extra):
        r.update(extra)
        r["scenario"] = name
        r["backend"] = label
        rows.append(r)
        log(f"   {name:<34} {r['rps']:>9.0f} req/s  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  p99.9 {r['p999']:.2f} ms"
            f"  cpu/1000 {r.get('cpu_per_1000', 0):.3f} s  peak {r.get('peak_rss_mb', 0):.0f} MB"
            + (f"  WRONG {r['wrong']}" if r.get("wrong") else "") + (f"  non2xx {r['status_errors']}" if r.get("status_errors") else ""))

    # Idle memory: after start, one login and a settle.
    time.sleep(1)
    idle = portal.stats.rss_mb()

    if algorithm == "RS256" and not args.skip_static:
        add("discovery", wrk(portal.base + "/.well-known/openid-configuration", secs, conns, threads,
                             {"EXPECT": '"issuer"'}, portal.stats))
        add("jwks", wrk(portal.base + "/keys", secs, conns, threads, {"EXPECT": '"keys"'}, portal.stats))
        if args.pairs > 0 and getattr(args, "hello_url", None):
            rows[-2]["pairs"] = static_pairs(portal, args)

    add(f"refresh {algorithm}", refresh_load(portal, s, os.path.join(work, f"chains-{label}-{algorithm}.txt"), args))

    if algorithm == "RS256":
        review = lambda tok: json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": tok}})
        hook = {"METHOD": "POST", "CONTENT_TYPE": "application/json", "AUTHORIZATION": "Bearer " + portal.webhook_token}
        add("tokenreview valid", wrk(portal.base + "/webhook/tokenreview", secs, conns, threads,
                                     dict(hook, BODY=review(portal.credential), EXPECT='"authenticated":true'), portal.stats))
        cid = portal.credential[4:20]
        for name, tok in (("wrong secret", credential_token(cid, "x" * 43)),
                          ("unknown id", credential_token("u" * 16, "y" * 43)),
                          ("bad checksum", portal.credential[:-6] + ("000000" if not portal.credential.endswith("000000") else "111111"))):
            add(f"tokenreview invalid: {name}", wrk(portal.base + "/webhook/tokenreview", secs, conns, threads,
                                                    dict(hook, BODY=review(tok), EXPECT='"authenticated":false'), portal.stats))
        body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "client_id": "kubernetes",
                                       "subject_token": portal.credential,
                                       "subject_token_type": "urn:portal:params:oauth:token-type:application-credential"})
        add("credential exchange RS256", wrk(portal.base + "/token", secs, conns, threads, {
            "METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded", "BODY": body, "EXPECT": '"id_token"'},
            portal.stats))
        add("password login (code flow)", run_login(portal, args.login_seconds, args.login_concurrency))
        if args.plugin:
            add("refresh through kubectl-portal", run_plugin_refresh(portal, args.plugin, s, secs))

        # Ten parallel refreshes of one token, while a refresh load runs beside them.
        path2 = os.path.join(work, f"chains-{label}-bg.txt")
        chains(portal, s, conns, path2)
        bg = {}
        t = threading.Thread(target=lambda: bg.update(wrk(portal.base + "/token", secs, conns, threads, {
            "CHAIN_FILE": path2, "CHAIN_BODY": "grant_type=refresh_token&client_id=kubernetes&refresh_token=%s",
            "CONTENT_TYPE": "application/x-www-form-urlencoded"})))
        t.start()
        par = run_parallel_refresh(portal, s, args.parallel_rounds)
        t.join()
        par.update(rps=bg.get("rps", 0), requests=bg.get("requests", 0), wrong=par["bad_rounds"] + bg.get("wrong", 0),
                   status_errors=bg.get("status_errors", 0), socket_errors=bg.get("socket_errors", 0),
                   note=f"{par['rounds']} rounds of 10, {par['bad_rounds']} wrong; req/s is the refresh load beside them"
                   + (f"; {par['first_problem']}" if par["first_problem"] else ""))
        add("10 parallel refreshes of one token", par)
    after = portal.stats.rss_mb()
    return rows, idle, after



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--postgres", help="PostgreSQL admin URL; the suite creates its own databases")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--login-seconds", type=int, default=15)
    ap.add_argument("--login-concurrency", type=int, default=4)
    ap.add_argument("--parallel-rounds", type=int, default=100)
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--bcrypt-cost", type=int, default=12)
    ap.add_argument("--skip-static", action="store_true")
    ap.add_argument("--pairs", type=int, default=3, help="back-to-back SQLite/PostgreSQL refresh pairs per algorithm (the ratio target)")
    ap.add_argument("--plugin", help="the kubectl-portal binary, for the plugin refresh scenario")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = ap.parse_args()

    cores = os.cpu_count()
    work = tempfile.mkdtemp(prefix="portal-bench-")
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{cores} cores, {platform.machine()}, {platform.platform()}",
              "git": subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
              "settings": {"duration_s": args.duration, "connections": args.connections, "wrk_threads": args.threads,
                           "bcrypt_cost": args.bcrypt_cost}}
    hello = None
    try:
        log(f"==> reference limits ({cores} cores)")
        ref = {"rsa2048_sign": openssl_speed("rsa2048", args.openssl_seconds, cores),
               "p256_sign": openssl_speed("ecdsap256", args.openssl_seconds, cores)}
        log(f"   openssl speed -multi {cores}: RSA-2048 {ref['rsa2048_sign']:.0f} sign/s, P-256 {ref['p256_sign']:.0f} sign/s")
        h = subprocess.run([args.bin, "bench", "hash", "--cost", str(args.bcrypt_cost), "--seconds", "5",
                            "--concurrency", str(args.login_concurrency)], capture_output=True, text=True, timeout=120)
        ref["bcrypt_per_second"] = json.loads(h.stdout)["per_second"]
        log(f"   bcrypt cost {args.bcrypt_cost}: {ref['bcrypt_per_second']:.2f} verifications/s")
        port = free_port()
        # Stays up for the whole run: discovery and JWKS are also measured back to back with it (static_pairs).
        hello = subprocess.Popen([args.bin, "bench", "hello", "--listen", f"127.0.0.1:{port}"])
        args.hello_url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                requests.get(args.hello_url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        hw = wrk(args.hello_url, args.duration, args.connections, args.threads, {"EXPECT": "hello"}, Proc(hello.pid))
        ref["hello_rps"] = hw["rps"]
        ref["hello"] = hw
        log(f"   hello-world route: {hw['rps']:.0f} req/s p99 {hw['p99']:.2f} ms")
        report["reference"] = ref

        backends = [("sqlite", None)]
        if args.postgres:
            backends.append(("postgres", args.postgres))
        # Algorithm by algorithm, each backend in turn: the two figures a "PostgreSQL ≥ 70 % of SQLite"
        # target divides are measured minutes apart, not a whole backend's run apart (this VM's speed
        # swings by a third within minutes: docs/performance.md, seventh steps).
        report["backends"] = {label: {"rows": [], "memory": {}} for label, _ in backends}
        report["pairs"] = {}
        for algorithm in ("RS256", "ES256"):
            running, drops = {}, []
            try:
                for label, admin_url in backends:
                    rows, mem = report["backends"][label]["rows"], report["backends"][label]["memory"]
                    url = None
                    if admin_url:
                        warm_wal(args, admin_url)
                        url, drop = fresh_database(args, admin_url, f"bench_{algorithm.lower()}")
                        drops.append(drop)
                    log(f"==> {label}, {algorithm}")
                    p = Portal(args.bin, work, f"{label}-{algorithm}", algorithm, url, args.bcrypt_cost)
                    running[label] = p
                    r, idle, after = scenarios(p, label, algorithm, args, work)
                    rows += r
                    mem[algorithm] = {"idle_rss_mb": idle, "rss_after_load_mb": after}
                if len(running) == 2 and args.pairs > 0:
                    log(f"==> refresh {algorithm}, SQLite and PostgreSQL back to back ({args.pairs} pairs)")
                    report["pairs"][algorithm] = refresh_pairs(running, algorithm, args, work)
            finally:
                for p in running.values():
                    p.stop()
                for drop in drops:
                    drop()
        # The storage's share of a refresh, without HTTP or a signature (`portal bench rotation`).
        # Side measurements: a failure is reported, never allowed to cost the run its results.
        report["rotation"] = {}
        for label, admin_url in backends:
            try:
                r = rotation_alone(args, admin_url)
            except Exception as e:  # noqa: BLE001
                log(f"   {label} rotation alone FAILED: {e}")
                continue
            report["rotation"][label] = r
            log(f"   {label} rotation alone: {r['per_second']:.0f}/s, {r['cpu_ms_per_rotation']:.3f} CPU-ms each, mean batch {r['mean_batch']:.1f}")
        # A refresh against what it cannot avoid, back to back (`portal bench floor`; docs/performance.md, eleventh steps).
        try:
            report["ladder"] = ladder(args, work, hello.pid)
        except Exception as e:  # noqa: BLE001
            log(f"   ladder FAILED: {e}")
            report["ladder"] = None
        try:
            report["sqlite_floor"] = sqlite_floor(args, work)
        except Exception as e:  # noqa: BLE001
            log(f"   SQLite's own rotation (C) FAILED: {e}")
            report["sqlite_floor"] = None
        if report["sqlite_floor"]:
            log("   SQLite's own rotation (C): " + ", ".join(f"{b} per transaction {f['cpu_ms_per_rotation']:.3f} CPU-ms"
                                                          for b, f in report["sqlite_floor"].items()))
        report["targets"] = targets(report)
    finally:
        if hello:
            hello.terminate()
            hello.wait()
        shutil.rmtree(work, ignore_errors=True)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "latest.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = markdown(report)
    with open(os.path.join(args.out_dir, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    return 0 if all(t["ok"] for t in report["targets"]) else 3


if __name__ == "__main__":
    sys.exit(main())
