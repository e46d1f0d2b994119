"""Page weight (HTML + the CSS and JS it links, uncompressed, and on the wire with gzip) and time to first byte on loopback
for the main pages, against a throwaway `portal serve` (debug build unless PORTAL_BIN says otherwise).
Fails (exit 1) if a page weighs 100 KB or more. Not part of the test command. N=50 for more rounds."""
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../Tests/blackbox"))
import requests  # noqa: E402

from conftest import Portal  # noqa: E402

ROUNDS = int(os.environ.get("N", "20"))
# People (and a tenth as many robots) seeded into the database first: the admin pages at the size of a company.
SEED = int(os.environ.get("SEED", "5000"))
LIMIT = 100 * 1024


def main():
    tmp = tempfile.mkdtemp(prefix="portal-pages-bench-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    f"{tmp}/ca.key", "-out", f"{tmp}/ca.crt", "-days", "1", "-subj", "/CN=bench CA"], check=True, capture_output=True)
    portal = Portal(extra_yaml=f"""
kubernetes:
  clusters:
    - name: prod
      server: https://k8s.example.org:6443
      certificate_authority_file: {tmp}/ca.crt
""")
    try:
        r = portal.cli("user", "add", "bench-admin", "--password-stdin", "--admin", "--group", "dev", stdin="bench-password-0123456789\n")
        assert r.returncode == 0, r.stderr
        if SEED:
            from test_admin_scale import seed
            seed(f"{portal.dir}/data/portal.sqlite", people=SEED, robots=SEED // 10)
            print(f"seeded {SEED} people and {SEED // 10} robots")
        s = requests.Session()
        csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(portal.base + "/login").text).group(1)
        r = s.post(portal.base + "/login", data={"csrf": csrf, "username": "bench-admin", "password": "bench-password-0123456789"},
                   allow_redirects=False)
        assert r.status_code == 303, r.status_code
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        pages = [("/login", False), (portal.setup_url.removeprefix(portal.base), False), ("/", True), ("/kubernetes", True),
                 ("/credentials", True), ("/admin/users", True), ("/admin/users?q=person-04999", True), ("/admin/users?page=60", True),
                 ("/admin/users/person-01234", True), ("/admin/robots", True), ("/admin/audit", True), ("/admin/apiserver", True),
                 ("/no-such-page", False)]
        print(f"{'page':<30}{'status':>7}{'HTML':>9}{'CSS+JS':>9}{'total':>9}{'gzipped':>9}   TTFB p50 / p99 (ms, {ROUNDS} rounds)")
        failed = False
        for path, signed_in in pages:
            headers = {"Cookie": cookie} if signed_in else {}
            body = (s.get if signed_in else requests.get)(portal.base + path).text
            assets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', body) + re.findall(r'<script src="([^"]+)"', body)
            asset_bytes = sum(len(requests.get(portal.base + a).content) for a in assets)
            html_bytes = len(body.encode())
            status, times = ttfb(portal.port, path, headers)
            total = html_bytes + asset_bytes
            wire = sum(wire_bytes(portal.port, p, headers) for p in [path] + assets)
            failed |= total >= LIMIT
            label = path if len(path) <= 28 else path[:25] + "…"
            print(f"{label:<30}{status:>7}{html_bytes:>9}{asset_bytes:>9}{total:>9}{wire:>9}   {pct(times, 50):6.2f} / {pct(times, 99):6.2f}"
                  + ("   OVER 100 KB" if total >= LIMIT else ""))
        return 1 if failed else 0
    finally:
        portal.stop()
        shutil.rmtree(portal.dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def wire_bytes(port, path, headers):
    """Body bytes sent for a client that accepts gzip (what a browser downloads)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={**headers, "Accept-Encoding": "gzip"})
    size = len(conn.getresponse().read())
    conn.close()
    return size


def ttfb(port, path, headers):
    """Time from sending the request to the status line and headers, over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    status = 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        times.append((time.perf_counter() - start) * 1000)
        status = resp.status
        resp.read()
    conn.close()
    return status, times


def pct(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    sys.exit(main())
