"""What a portal password login costs over a bare `ldapwhoami` for the same user.

Starts a throwaway slapd (Tests/blackbox/ldap_fixture.py) and a portal configured for it, then
times N rounds of `ldapwhoami -x -D dn -w pw` and N portal logins (POST /login, the form's GET not
timed) and prints p50/p99 of each and of the difference. Not part of the test suite."""
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "blackbox"))

import requests  # noqa: E402

import ldap_fixture as L  # noqa: E402
from conftest import Portal  # noqa: E402
from test_ldap import ldap_yaml  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    n = int(os.environ.get("N", "200"))
    slapd = L.Slapd()
    os.environ["LDAP_BIND_PASSWORD"] = L.SERVICE_PW
    user, password = "alice", L.PASSWORDS["alice"]
    dn = f"uid={user},{L.PEOPLE}"
    try:
        for precedence in ["ldap_first", "local_first"]:
            portal = Portal(extra_yaml=ldap_yaml([slapd.url], extra=f"  precedence: {precedence}\n"))
            try:
                measure(portal, slapd, n, user, password, dn, precedence)
            finally:
                portal.stop()
    finally:
        slapd.close()


def measure(portal, slapd, n, user, password, dn, precedence):
    if True:
        whoami, logins = [], []
        s = requests.Session()
        for i in range(n + 10):
            t = time.perf_counter()
            r = subprocess.run(["ldapwhoami", "-x", "-H", slapd.url, "-D", dn, "-w", password], capture_output=True)
            d = time.perf_counter() - t
            assert r.returncode == 0, r.stderr
            if i >= 10:
                whoami.append(d)

            s.cookies.clear()
            page = s.get(portal.issuer + "/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            t = time.perf_counter()
            r = s.post(portal.issuer + "/login", data={"csrf": csrf, "username": user, "password": password}, allow_redirects=False)
            d = time.perf_counter() - t
            assert r.status_code == 303, r.status_code
            if i >= 10:     # the first rounds warm connections and caches
                logins.append(d)
        ms = lambda x: f"{x * 1000:7.2f} ms"
        print(f"{n} rounds, user {user}, slapd on {slapd.url}, precedence: {precedence}"
              + (" (an unknown local name costs one bcrypt first, as a wrong local password would)" if precedence == "local_first" else ""))
        print(f"  ldapwhoami (process start + connect + bind):  p50 {ms(pct(whoami, 50))}  p99 {ms(pct(whoami, 99))}")
        print(f"  portal POST /login (search, bind, groups, session, audit):  p50 {ms(pct(logins, 50))}  p99 {ms(pct(logins, 99))}")
        print(f"  added by the portal:  p50 {ms(pct(logins, 50) - pct(whoami, 50))}  p99 {ms(pct(logins, 99) - pct(whoami, 99))}"
              f"  (mean {ms(statistics.mean(logins) - statistics.mean(whoami))})")


if __name__ == "__main__":
    main()
