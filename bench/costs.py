#!/usr/bin/env python3
"""Where a refresh's CPU goes, for bench/suite.py: the storage alone (`portal bench rotation`), SQLite's own
rotation from C (sqlite_floor.c), a refresh against its floors (`portal bench floor`, the ladder) and the step
tables; and the PostgreSQL housekeeping those measurements need (WAL made ahead, databases of their own)."""
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time

import requests

from harness import HERE, Portal, Proc, clean, free_port, log, refresh_load, wrk



def warm_wal(args, admin_url):
    """A PostgreSQL that has carried traffic for a while has its WAL segments made ahead: each checkpoint
    renames used ones for reuse. The bench's fresh private cluster has not, so under the refresh load it
    created and zero-filled a new 16 MB segment every second or two, and each creation held every commit
    behind it (wait events WALInitWrite/WALInitSync; the PostgreSQL ES256 refresh's p99 22-73 ms against
    7-9 ms once segments were ready: docs/performance.md, tenth steps). So before each PostgreSQL portal
    starts, the suite switches through 64 segments and checkpoints, as a server in service would have.
    fsync stays on; nothing about the commits changes."""
    sql = "CHECKPOINT;\n" + "SELECT txid_current(); SELECT pg_switch_wal();\n" * 64 + "CHECKPOINT;\n"
    try:
        subprocess.run([args.psql, admin_url, "-q", "-At"], input=sql, text=True, capture_output=True, check=True, timeout=180)
    except (subprocess.SubprocessError, OSError) as e:
        log(f"   making WAL segments ahead FAILED (the run goes on without): {e}")



def fresh_database(args, admin_url, prefix):
    """A new PostgreSQL database for one measurement; returns (its URL, a function that drops it)."""
    db = f"{prefix}_{secrets.token_hex(3)}"
    subprocess.run([args.psql, admin_url, "-q", "-c", f"CREATE DATABASE {db}"], check=True)
    drop = lambda: subprocess.run([args.psql, admin_url, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                                  capture_output=True, timeout=60)
    return admin_url.rsplit("/", 1)[0] + "/" + db, drop



def rotation_alone(args, admin_url):
    """`portal bench rotation`: 16 chains looked up and rotated through the storage alone (a fresh database,
    dropped afterwards on PostgreSQL)."""
    cmd = [args.bin, "bench", "rotation", "--seconds", "5", "--chains", str(args.connections)]
    drop = None
    if admin_url:
        url, drop = fresh_database(args, admin_url, "bench_rotation")
        cmd += ["--database", url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    finally:
        if drop:
            drop()
    return json.loads(out.stdout)



def sqlite_floor(args, work):
    """SQLite's own cost of a rotation (bench/sqlite_floor.c, C on one thread, the portal's statements and
    schema) at 1, 2 and 8 rotations per transaction; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    exe = os.path.join(work, "sqlite_floor")
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "sqlite_floor.c"), "-lsqlite3"], check=True)
    d = os.path.join(work, "floor")
    os.makedirs(d)
    with open(os.path.join(d, "portal.yaml"), "w") as f:
        f.write(f"data_dir: {d}/data\nlog: {{level: warning}}\n")
    subprocess.run([args.bin, "user", "list", "--config", os.path.join(d, "portal.yaml")], check=True, capture_output=True, timeout=60)
    out = {}
    for batch in (1, 2, 8):
        r = subprocess.run([exe, os.path.join(d, "data", "portal.sqlite"), str(batch), "30000"], capture_output=True, text=True,
                           timeout=120, check=True)
        out[str(batch)] = json.loads(r.stdout)
    return out



def floor_ladder(args, work, label, admin_url, levels=("http", "rotation", "sign"), algorithm="RS256"):
    """`portal bench floor`: POST /token on the same HTTP server doing only what a refresh cannot avoid,
    driven exactly like the refresh scenario (16 chains, each answer's successor used next). Three levels,
    each adding one thing: the HTTP exchange of a token response's size (form in, security headers,
    no-store); + the durable single-use rotation through the portal's storage; + an RS256 signature.
    Returns {level: wrk row}; a level that fails is left out and logged."""
    out = {}
    for level in levels:
        port = free_port()
        chain_file = os.path.join(work, f"floor-{label}-{level}.txt")
        cmd = [args.bin, "bench", "floor", "--listen", f"127.0.0.1:{port}", "--level", level, "--algorithm", algorithm,
               "--chains-file", chain_file, "--chains", str(args.connections)]
        drop = None
        if admin_url and level != "http":
            url, drop = fresh_database(args, admin_url, "bench_floor")
            cmd += ["--database", url]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/token"
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"portal bench floor exited with {proc.returncode}")
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            r = wrk(url, args.duration, args.connections, args.threads, {
                "CHAIN_FILE": chain_file, "CHAIN_BODY": "grant_type=refresh_token&client_id=kubernetes&refresh_token=%s",
                "CONTENT_TYPE": "application/x-www-form-urlencoded"}, Proc(proc.pid))
            out[level] = r
            log(f"   {label} floor {level:<8} {r['rps']:>8.0f} req/s  p99 {r['p99']:.2f} ms  cpu/1000 {r['cpu_per_1000']:.3f} s"
                + ("" if clean(r) else "  (errors)"))
        except Exception as e:  # noqa: BLE001
            log(f"   {label} floor {level} FAILED: {e}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if drop:
                drop()
    return out



def ladder(args, work, hello_pid, rounds=2):
    """A refresh against its floors, back to back and `rounds` times (the VM's speed drifts by a third within
    minutes, so figures compared are seconds apart): hello-world, the three `portal bench floor` levels, and
    the real RS256 refresh on SQLite. Returns {step: [rows]}; the report takes each step's median CPU."""
    p = Portal(args.bin, work, "ladder", "RS256", None, args.bcrypt_cost)
    s = requests.Session()
    p.password_login(s)
    out = {"hello": [], "http": [], "rotation": [], "sign": [], "refresh": []}
    try:
        for i in range(rounds):
            # Which goes first alternates: the VM drifts within a round too.
            if i % 2:
                out["refresh"].append(refresh_load(p, s, os.path.join(work, f"chains-ladder-{i}.txt"), args))
            out["hello"].append(wrk(args.hello_url, args.duration, args.connections, args.threads, {"EXPECT": "hello"}, Proc(hello_pid)))
            for level, r in floor_ladder(args, work, f"ladder-{i}", None).items():
                out[level].append(r)
            if i % 2 == 0:
                out["refresh"].append(refresh_load(p, s, os.path.join(work, f"chains-ladder-{i}.txt"), args))
            r = out["refresh"][-1]
            log(f"   ladder round {i + 1}: hello {out['hello'][-1]['cpu_per_1000']:.3f}, refresh RS256 {r['cpu_per_1000']:.3f} CPU-ms"
                f" (steal ≤ {max(x[-1]['steal_pct'] for x in out.values() if x):.1f} %)")
    finally:
        p.stop()
    return out



def ladder_medians(report):
    """Each ladder step's median CPU-ms per request over its clean rounds; None when a step is missing."""
    med = {}
    for k, rows in (report.get("ladder") or {}).items():
        cpus = [r["cpu_per_1000"] for r in rows if r.get("cpu_per_1000") and clean(r)]
        if cpus:
            med[k] = statistics.median(cpus)
    return med if len(med) == 5 else None



def ladder_steps(report):
    """The ladder's medians (CPU-ms per request) and what they say; [] when a step is missing."""
    med = ladder_medians(report)
    if not med:
        return []
    sig = 1000.0 * (os.cpu_count() or 1) / report["reference"]["rsa2048_sign"]
    return [("hello-world, same HTTP server (GET, 5 bytes)", med["hello"]),
            ("floor 1: POST /token answering a token response's size — form in, successor, JSON out, security headers, no-store", med["http"]),
            ("floor 2: + the durable single-use rotation with its audit row (the portal's storage, batched)", med["rotation"]),
            ("floor 3: + an RS256 signature of an id_token's claims", med["sign"]),
            ("refresh RS256 through the portal (all of it)", med["refresh"]),
            ("→ what signing adds in a busy process (floor 3 − floor 2; above `openssl speed`'s signature: the rest runs slower beside it)",
             med["sign"] - med["rotation"]),
            (f"→ floor 3 outside one `openssl speed` signature ({sig:.3f}): no portal code in it, the issue's accounting", med["sign"] - sig),
            ("→ the refresh outside one `openssl speed` signature", med["refresh"] - sig),
            ("→ the portal's own work above the floors (refresh − floor 3)", med["refresh"] - med["sign"])]



def cost_steps(report, label):
    """Where an RS256 refresh's CPU goes, step by step, from this run's rows (CPU-ms per request)."""
    ref = report["reference"]
    rows = {r["scenario"]: r for r in report["backends"][label]["rows"]}
    need = ("jwks", "tokenreview invalid: bad checksum", "credential exchange RS256", "refresh RS256")
    if not all(k in rows and rows[k].get("cpu_per_1000") for k in need) or not ref["hello"].get("cpu_per_1000"):
        return []
    sig = 1000.0 * (os.cpu_count() or 1) / ref["rsa2048_sign"]
    steps = [("hello-world, same HTTP stack", ref["hello"]["cpu_per_1000"]),
             ("JWKS (middleware, router)", rows["jwks"]["cpu_per_1000"]),
             ("TokenReview, bad checksum (POST, JSON in and out, no storage)", rows["tokenreview invalid: bad checksum"]["cpu_per_1000"]),
             (f"credential exchange RS256 minus one signature ({sig:.3f}): form, client, credential from memory, claims, response, "
              "its audit row's commit", rows["credential exchange RS256"]["cpu_per_1000"] - sig),
             ("refresh RS256 minus one signature", rows["refresh RS256"]["cpu_per_1000"] - sig)]
    rot = report.get("rotation", {}).get(label)
    if rot:
        steps.append((f"lookup + rotation through the storage alone (no HTTP; mean batch {rot['mean_batch']:.1f})", rot["cpu_ms_per_rotation"]))
    floor = report.get("sqlite_floor")
    if floor and label == "sqlite":
        steps += [(f"SQLite's own rotation, C on one thread, {b} per transaction (bench/sqlite_floor.c)", f["cpu_ms_per_rotation"])
                  for b, f in floor.items()]
    return steps
