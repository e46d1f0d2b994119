#!/usr/bin/env python3
"""The benchmark report: each target judged against this run's own reference limits, and the Markdown
tables (bench/suite.py writes them to bench/results/latest.md)."""
import statistics

from costs import cost_steps, ladder_medians, ladder_steps
from harness import clean




# ---------------------------------------------------------------- report

def verdict(ok):
    return "met" if ok else "MISSED"




def targets(report):
    ref = report["reference"]
    out = []
    for label, b in report["backends"].items():
        rows = {r["scenario"]: r for r in b["rows"]}

        def t(name, ok, figure, want):
            out.append({"backend": label, "target": name, "ok": bool(ok), "figure": figure, "want": want})

        if "discovery" in rows:
            pairs = rows["discovery"].get("pairs")
            for s in ("discovery", "jwks"):
                r = rows[s]
                if pairs:
                    ratio = statistics.median(p[s] / max(p["hello"], 1e-9) for p in pairs)
                    t(f"{s} ≥ 70 % of hello-world (median of {len(pairs)} back-to-back rounds)",
                      ratio >= 0.7 and clean(r) and all(p["clean"] for p in pairs),
                      f"{100 * ratio:.0f} % (rounds: " + ", ".join(f"{100 * p[s] / max(p['hello'], 1e-9):.0f} %" for p in pairs)
                      + f"; scenario row {100 * r['rps'] / ref['hello_rps']:.0f} %)", "≥ 70 %")
                else:
                    t(f"{s} ≥ 70 % of hello-world", r["rps"] >= 0.7 * ref["hello_rps"] and clean(r),
                      f"{r['rps']:.0f}/s = {100 * r['rps'] / ref['hello_rps']:.0f} %", f"≥ {0.7 * ref['hello_rps']:.0f}/s")
        r = rows["refresh RS256"]
        t("refresh RS256 ≥ 80 % of RSA-2048 sign/s", r["rps"] >= 0.8 * ref["rsa2048_sign"] and clean(r),
          f"{r['rps']:.0f}/s = {100 * r['rps'] / ref['rsa2048_sign']:.0f} %", f"≥ {0.8 * ref['rsa2048_sign']:.0f}/s")
        r = rows["refresh ES256"]
        t("refresh ES256 ≥ 4,000/s, p99 ≤ 15 ms", r["rps"] >= 4000 and r["p99"] <= 15 and clean(r),
          f"{r['rps']:.0f}/s, p99 {r['p99']:.1f} ms", "≥ 4,000/s, ≤ 15 ms")
        for s in [k for k in rows if k.startswith("tokenreview")]:
            r = rows[s]
            t(f"{s} ≥ 10,000/s, p99 ≤ 5 ms", r["rps"] >= 10000 and r["p99"] <= 5 and clean(r),
              f"{r['rps']:.0f}/s, p99 {r['p99']:.1f} ms", "≥ 10,000/s, ≤ 5 ms")
        r = rows["password login (code flow)"]
        t("password login ≥ 80 % of bcrypt verifications/s", r["rps"] >= 0.8 * ref["bcrypt_per_second"] and clean(r),
          f"{r['rps']:.2f}/s = {100 * r['rps'] / ref['bcrypt_per_second']:.0f} %", f"≥ {0.8 * ref['bcrypt_per_second']:.2f}/s")
        r = rows["10 parallel refreshes of one token"]
        t("10 parallel refreshes: every round correct", r["bad_rounds"] == 0 and clean(r),
          f"{r['rounds'] - r['bad_rounds']}/{r['rounds']} rounds", "all")
        idle = max(m["idle_rss_mb"] for m in b["memory"].values())
        peak = max(r.get("peak_rss_mb", 0) for r in b["rows"])
        t("RSS ≤ 60 MB idle", idle <= 60, f"{idle:.0f} MB", "≤ 60 MB")
        t("RSS ≤ 150 MB under load", peak <= 150, f"{peak:.0f} MB", "≤ 150 MB")
    # Issue 19: the scale-out backend within reach of the embedded one, side by side in the same run:
    # the median of the back-to-back pairs' ratios (refresh_pairs), or the scenario rows without pairs.
    backends = report["backends"]
    if "sqlite" in backends and "postgres" in backends:
        lite = {r["scenario"]: r for r in backends["sqlite"]["rows"]}
        pg = {r["scenario"]: r for r in backends["postgres"]["rows"]}
        for alg in ("RS256", "ES256"):
            s = f"refresh {alg}"
            pairs = report.get("pairs", {}).get(alg)
            if pairs:
                ratio = statistics.median(p["ratio"] for p in pairs)
                ok = ratio >= 0.7 and all(clean(p["postgres"]) and clean(p["sqlite"]) for p in pairs)
                out.append({"backend": "postgres", "target": f"{s} ≥ 70 % of SQLite's (median of {len(pairs)} back-to-back pairs)",
                            "ok": ok, "figure": f"{100 * ratio:.0f} % (pairs: " + ", ".join(f"{100 * p['ratio']:.0f} %" for p in pairs) + ")",
                            "want": "≥ 70 %"})
            elif s in lite and s in pg:
                ratio = pg[s]["rps"] / max(lite[s]["rps"], 1e-9)
                out.append({"backend": "postgres", "target": f"{s} ≥ 70 % of SQLite's", "ok": ratio >= 0.7 and clean(pg[s]),
                            "figure": f"{pg[s]['rps']:.0f}/s = {100 * ratio:.0f} % of {lite[s]['rps']:.0f}/s",
                            "want": f"≥ {0.7 * lite[s]['rps']:.0f}/s"})
    # Issue 19, eleventh steps: a refresh against what it cannot avoid. Floor 3 (`portal bench floor --level sign`:
    # the HTTP exchange, the durable rotation, the signature, none of the portal's own code) is what an RS256
    # refresh on this stack cannot go below; the portal's own work is what the refresh costs above it. A guard
    # against regressions, not a figure to chase: runs measured −3 … +19 % (the high end in --quick runs of 3 s
    # per step), so the line sits at +25 %.
    if "ladder" in report:
        med = ladder_medians(report)
        above = (med["refresh"] / med["sign"] - 1) if med else None
        out.append({"backend": "sqlite", "target": "refresh RS256 ≤ 25 % above its floor (the ladder: HTTP + durable rotation + signature)",
                    "ok": above is not None and above <= 0.25,
                    "figure": f"{100 * above:+.0f} % ({med['refresh']:.3f} against {med['sign']:.3f} CPU-ms)" if med else "not measured",
                    "want": "≤ +25 %"})
    return out




def markdown(report):
    ref = report["reference"]
    lines = [f"Run {report['date']} at {report['git']} on {report['machine']}; wrk {report['settings']['wrk_threads']} thread(s), "
             f"{report['settings']['connections']} keep-alive connections, {report['settings']['duration_s']} s per scenario "
             "(the load generator shares the cores with the portal).", "",
             "Reference limits measured in the same run:", "",
             "| limit | figure |", "|---|---|",
             f"| `openssl speed -multi` RSA-2048 sign | {ref['rsa2048_sign']:,.0f}/s |",
             f"| `openssl speed -multi` ECDSA P-256 sign | {ref['p256_sign']:,.0f}/s |",
             f"| hello-world route, same HTTP stack | {ref['hello_rps']:,.0f} req/s (p99 {ref['hello']['p99']:.2f} ms, "
             f"{ref['hello'].get('cpu_per_1000', 0):.3f} CPU-s / 1,000) |",
             f"| bcrypt verifications at cost {report['settings']['bcrypt_cost']} | {ref['bcrypt_per_second']:.2f}/s |", ""]
    for label, b in report["backends"].items():
        lines += [f"**{label}**", "",
                  "| scenario | req/s | p50 ms | p99 ms | p99.9 ms | CPU-s / 1,000 | peak RSS MB | machine idle / steal % | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in b["rows"]:
            errs = []
            for k, name in (("status_errors", "non-2xx"), ("socket_errors", "socket"), ("wrong", "wrong"), ("broken_chains", "broken chains")):
                if r.get(k):
                    errs.append(f"{r[k]} {name}")
            rps = f"{r['rps']:,.2f}" if r["rps"] < 100 else f"{r['rps']:,.0f}"
            cpu = f"{r['cpu_per_1000']:.3f}" if r.get("cpu_per_1000") else "–"
            peak = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "–"
            machine = f"{r['idle_pct']:.0f} / {r['steal_pct']:.1f}" if "idle_pct" in r else "–"
            lines.append(f"| {r['scenario']} | {rps} | {r['p50']:.2f} | {r['p99']:.2f} | {r['p999']:.2f} | "
                         f"{cpu} | {peak} | {machine} | {', '.join(errs) or '0'} |")
        for alg, m in b["memory"].items():
            lines.append("")
            lines.append(f"RSS ({alg} instance): {m['idle_rss_mb']:.0f} MB idle after start and one login, "
                         f"{m['rss_after_load_mb']:.0f} MB after its scenarios.")
        notes = [f"- {r['scenario']}: {r['note']}" for r in b["rows"] if r.get("note")]
        lines += [""] + notes + [""]
    for label in report["backends"]:
        steps = cost_steps(report, label)
        if steps:
            lines += [f"Where an RS256 refresh's CPU goes ({label}, portal CPU-ms per request, this run):", "",
                      "| step | CPU-ms |", "|---|---:|"] + [f"| {name} | {v:.3f} |" for name, v in steps] + [""]
    steps = ladder_steps(report)
    if steps:
        lines += ["A refresh against its floors (SQLite, RS256; `portal bench floor`, each step the median of "
                  f"{len(report['ladder']['refresh'])} back-to-back rounds, CPU-ms per request):", "",
                  "| step | CPU-ms |", "|---|---:|"] + [f"| {name} | {v:.3f} |" for name, v in steps] + [""]
    if report.get("pairs"):
        lines += ["Refresh, SQLite and PostgreSQL back to back (each pair seconds apart; the ratio target takes the median):", "",
                  "| algorithm | pair | SQLite req/s | PostgreSQL req/s | PostgreSQL ÷ SQLite | machine steal % (SQLite / PostgreSQL) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for alg, pairs in report["pairs"].items():
            for i, p in enumerate(pairs):
                lines.append(f"| {alg} | {i + 1} | {p['sqlite']['rps']:,.0f} | {p['postgres']['rps']:,.0f} | {100 * p['ratio']:.0f} % | "
                             f"{p['sqlite']['steal_pct']:.1f} / {p['postgres']['steal_pct']:.1f} |")
        lines.append("")
    lines += ["Targets:", "", "| backend | target | figure | wanted | |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['backend']} | {t['target']} | {t['figure']} | {t['want']} | {verdict(t['ok'])} |")
    return "\n".join(lines) + "\n"
