"""The TokenReview webhook's memory of verified credentials (issue 19, `webhook.cache_ttl`).

Every portal here keeps verified credentials for 300 s (`cache_ttl: 300s`), far longer than any
test runs: when a review is refused right after a change, only the invalidation can explain it — a
cache that missed the change would keep answering authenticated:true for five minutes.

- SQLite, one portal: changes made by the CLI (another process) bite on the first review that starts
  2 ms after the change's commit (the `change_epochs` counter is read at most every 2 ms, one read
  shared by the reviews in between; the tests wait 10 ms after the CLI returns).
- PostgreSQL, replicas A and B on one database: a change made through A empties B's memory within
  moments (triggers NOTIFY `portal_credentials`; B LISTENs on a connection of its own), and A itself
  refuses a credential it revoked on its very next review.
- PostgreSQL, B's LISTEN connection terminated: B stops answering from memory until it is back,
  and empties its memory when it reconnects, so a change whose NOTIFY B never received still bites.

On PostgreSQL a probe shows that B really answers from memory (so the refusals above are the
invalidation at work, not a cache that is never used): the test revokes a credential with SQL
that bypasses the triggers (`session_replication_role = replica`: no NOTIFY, no epoch), and B,
which verified it before, still accepts it while A, which never did, refuses it.
PostgreSQL tests need PORTAL_TEST_POSTGRES_URL (scripts/lib.sh start_postgres sets it)."""
import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import requests

from conftest import Portal

PG = os.environ.get("PORTAL_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not PG, reason="PORTAL_TEST_POSTGRES_URL is not set (scripts/lib.sh start_postgres sets it)")
WEBHOOK_TOKEN = secrets.token_hex(24)
PASSWORD = "credential-cache-password-1"
TTL = "300s"
# SQLite: a change from another process counts for every review that starts 2 ms after its commit.
CLI_WINDOW = 0.010


# ---------------------------------------------------------------------------------------------
# Helpers


def webhook_yaml(directory):
    path = os.path.join(directory, "webhook-token")
    with open(path, "w") as f:
        f.write(WEBHOOK_TOKEN + "\n")
    return f"webhook:\n  bearer_token_file: {path}\n  cache_ttl: {TTL}\n"


def review(p, token):
    """POST /webhook/tokenreview as kube-apiserver does; returns the status object."""
    r = requests.post(p.base + "/webhook/tokenreview", headers={"Authorization": "Bearer " + WEBHOOK_TOKEN}, timeout=10,
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["status"]


def assert_valid(p, token, times=2):
    """Valid `times` times in a row on `p` (the first verifies it and puts it in memory, the next come from there)."""
    for i in range(times):
        st = review(p, token)
        assert st["authenticated"] is True, f"review {i + 1} of a valid credential on {p.base}: {st}"
    return st


def refused_within(p, token, seconds=1.0, step=0.01, since=None):
    """Polls `p` every `step` s until `token` is refused: (delay in s from `since` or now, status), delay None if
    not within `seconds`."""
    start = since or time.monotonic()
    while True:
        st = review(p, token)
        elapsed = time.monotonic() - start
        if st["authenticated"] is False:
            return elapsed, st
        if elapsed > seconds:
            return None, st
        time.sleep(step)


def assert_refused_within(p, token, why, error, seconds=1.0, since=None):
    """`token` refused on `p` within `seconds` (polled every 10 ms) for the reason `error`; returns the delay."""
    delay, st = refused_within(p, token, seconds, since=since)
    assert delay is not None, (f"{why}: {p.base} still answers authenticated:true {seconds:.0f} s later (cache_ttl {TTL}: "
                               f"the change did not empty its memory): {st}")
    assert error in st.get("error", ""), f"{why}: refused after {delay * 1000:.1f} ms but for another reason: {st}"
    assert delay < seconds, f"{why}: refused on {p.base} only after {delay * 1000:.1f} ms"
    return delay


def cid_of(token):
    return token.split("_")[1]


def cli_ok(p, *args, stdin=None):
    r = p.cli(*args, stdin=stdin)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def new_credential(p, owner_flag, owner, name=None):
    out = cli_ok(p, "credential", "create", owner_flag, owner, "--name", name or "c-" + secrets.token_hex(3), "--expires", "1d")
    return re.search(r"kpc_\S+", out).group(0)


def add_user(p, name, *args):
    cli_ok(p, "user", "add", name, "--password-stdin", *args, stdin=PASSWORD + "\n")


def csrf_of(text):
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, "no CSRF field"
    return m.group(1)


def login(p, user):
    s = requests.Session()
    page = s.get(p.base + "/login")
    r = s.post(p.base + "/login", data={"csrf": csrf_of(page.text), "username": user, "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 303 and not r.headers["Location"].startswith("/login"), (r.status_code, r.headers, r.text[:300])
    return s


def post_change(p, s, page, path, expect_location, **form):
    """A confirmed change through the browser forms (CSRF from `page`): returns (response, when it arrived).
    Every change answers 303 to the list, its outcome in a one-time notice: `check_notice` reads it afterwards."""
    csrf = csrf_of(s.get(p.base + page).text)
    r = s.post(p.base + path, data={"csrf": csrf, **form}, allow_redirects=False)
    arrived = time.monotonic()
    assert r.status_code == 303 and r.headers["Location"] == expect_location, (path, form, r.status_code, r.headers, r.text[:500])
    return r, arrived


def check_notice(p, s, location, expected):
    text = html.unescape(s.get(p.base + location).text)
    assert expected in text, f"no notice “{expected}” after the change: {re.findall(r'<[^>]*(?:notice|error)[^>]*>([^<]*)', text)}"


def robot_id(p, admin, name):
    page = admin.get(p.base + "/admin/robots", params={"q": name}).text
    m = re.search(r'name="id" value="([^"]+)"', page)
    assert m, f"robot {name} not on /admin/robots"
    return m.group(1)


def stop(p):
    code = p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)
    return code


# ---------------------------------------------------------------------------------------------
# SQLite: one portal, changes from the CLI (another process)


@pytest.fixture(scope="module")
def sqlite_portal(tmp_path_factory):
    p = Portal(extra_yaml=webhook_yaml(str(tmp_path_factory.mktemp("cache-sqlite"))))
    cli_ok(p, "robot", "add", "cache-bot", "--team", "platform", "--group", "deployers")
    yield p
    assert stop(p) == 0


def cli_change(p, *args):
    """A change made by the CLI, then the SQLite window (`CLI_WINDOW`): the next review must see it."""
    out = cli_ok(p, *args)
    time.sleep(CLI_WINDOW)
    return out


def test_sqlite_revoked_from_the_cli_is_refused_on_the_very_next_review(sqlite_portal):
    p = sqlite_portal
    token = new_credential(p, "--robot", "cache-bot")
    st = assert_valid(p, token)
    assert st["user"]["username"] == "oidc:robot:cache-bot"
    cli_change(p, "credential", "revoke", cid_of(token))
    st = review(p, token)
    assert st["authenticated"] is False and st["error"] == "credential revoked", (
        f"revoked by the CLI, the next review still says: {st} (a cache that missed the change answers true for {TTL})")
    # Another credential of the same robot is untouched (the memory was emptied, not the answers).
    other = new_credential(p, "--robot", "cache-bot")
    assert_valid(p, other)


def test_sqlite_rotated_from_the_cli_without_overlap_old_secret_refused_at_once(sqlite_portal):
    p = sqlite_portal
    old = new_credential(p, "--robot", "cache-bot")
    assert_valid(p, old)
    out = cli_change(p, "credential", "rotate", cid_of(old), "--overlap", "0s")
    new = re.search(r"kpc_\S+", out).group(0)
    assert new != old and cid_of(new) == cid_of(old)
    st = review(p, old)
    assert st["authenticated"] is False, f"the old secret, rotated out by the CLI with overlap 0, is still accepted: {st}"
    assert_valid(p, new)
    assert review(p, old)["authenticated"] is False


def test_sqlite_robot_disabled_from_the_cli_is_refused_at_once_and_enabled_accepted(sqlite_portal):
    p = sqlite_portal
    cli_ok(p, "robot", "add", "toggled-bot", "--team", "platform")
    token = new_credential(p, "--robot", "toggled-bot")
    assert_valid(p, token)
    cli_change(p, "robot", "disable", "toggled-bot")
    st = review(p, token)
    assert st["authenticated"] is False and "robot" in st["error"], f"robot disabled by the CLI, the next review says: {st}"
    cli_change(p, "robot", "enable", "toggled-bot")
    assert_valid(p, token)
    # And again: the answer cached after enabling goes with the next change too.
    cli_change(p, "robot", "disable", "toggled-bot")
    assert review(p, token)["authenticated"] is False


def test_sqlite_owner_groups_and_disable_from_the_cli_show_at_once(sqlite_portal):
    p = sqlite_portal
    add_user(p, "grouped", "--group", "dev", "--group", "ops")
    token = new_credential(p, "--user", "grouped")
    st = assert_valid(p, token)
    assert sorted(st["user"]["groups"]) == ["oidc:dev", "oidc:ops"], st
    cli_change(p, "user", "set-groups", "grouped", "--group", "dev")
    st = review(p, token)
    assert st["authenticated"] is True and st["user"]["groups"] == ["oidc:dev"], f"a lost group still shows (stale memory): {st}"
    cli_change(p, "user", "disable", "grouped")
    st = review(p, token)
    assert st["authenticated"] is False and "owner" in st["error"], f"owner disabled by the CLI, the next review says: {st}"


# ---------------------------------------------------------------------------------------------
# PostgreSQL: replicas A and B on one database


def psql(url, sql):
    return subprocess.run(["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def tcp_ports(pid):
    """Local TCP ports of the sockets process `pid` holds (its client ends of PostgreSQL connections among them)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def listen_backends(database, p):
    """PostgreSQL backends of `p`'s LISTEN connection: the only connection that ran LISTEN (and, every 5 s
    after, its liveness probe SELECT 1)."""
    ports = tcp_ports(p.proc.pid)
    if not ports:
        return []
    rows = psql(database, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND client_port IN ("
                          + ",".join(str(x) for x in sorted(ports)) + ") AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')")
    return [int(x) for x in rows.split()] if rows else []


def wait_listening(database, p, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        pids = listen_backends(database, p)
        if len(pids) == 1:
            time.sleep(0.3)  # the LISTEN answered: give the replica a moment to mark itself as following
            return pids[0]
        time.sleep(0.1)
    rows = psql(database, "SELECT pid, client_port, state, query FROM pg_stat_activity WHERE datname = current_database()")
    raise AssertionError(f"{p.base} has no (single) LISTEN connection after {seconds} s: {listen_backends(database, p)}\n{rows}")


def sneak_revoke(database, cid):
    """Revokes in the database without firing the triggers (no NOTIFY, no epoch): only a replica that
    reads the database sees it. A probe for what a replica serves from memory."""
    psql(database, "SET session_replication_role = replica; "
                   f"UPDATE app_credentials SET revoked_at = extract(epoch FROM now())::bigint WHERE id = '{cid}'")


def touch(database, cid):
    """A no-op write the triggers see (UPDATE OF revoked_at): NOTIFY portal_credentials."""
    psql(database, f"UPDATE app_credentials SET revoked_at = revoked_at WHERE id = '{cid}'")


def assert_served_from_memory(a, b, database, token):
    """B verified `token` (twice); revoked behind the triggers' back it is still accepted on B — from memory —
    while A, which never verified it, refuses it. Then a write the triggers see makes B refuse it too."""
    assert_valid(b, token)
    sneak_revoke(database, cid_of(token))
    st = review(b, token)
    assert st["authenticated"] is True, (
        f"B does not answer from memory (cache_ttl {TTL}): a credential it verified just before, revoked with no NOTIFY, "
        f"is refused: {st}")
    st = review(a, token)
    assert st["authenticated"] is False and st["error"] == "credential revoked", st
    touch(database, cid_of(token))
    return assert_refused_within(b, token, "after a NOTIFYing write", "credential revoked")


@pytest.fixture(scope="module")
def database():
    name = "portal_cache_" + uuid.uuid4().hex[:12]
    psql(PG, f"CREATE DATABASE {name}")
    yield PG.rsplit("/", 1)[0] + "/" + name
    psql(PG, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def replicas(database, tmp_path_factory):
    extra = webhook_yaml(str(tmp_path_factory.mktemp("cache-pg")))
    a = Portal(extra_yaml=extra, database_url=database)
    b = Portal(extra_yaml=extra, issuer=a.issuer, database_url=database, expect_setup_link=False)
    add_user(a, "alice", "--group", "dev")
    add_user(a, "carol", "--group", "dev")
    add_user(a, "boss", "--admin")
    for p in (a, b):
        wait_listening(database, p)
    yield a, b
    for p in (a, b):
        if p.proc.poll() is None:
            assert stop(p) == 0


@needs_pg
def test_pg_b_answers_from_memory_and_a_notify_empties_it(replicas, database):
    """The premise of the tests below: B really keeps what it verified (so its refusals are the invalidation)."""
    a, b = replicas
    token = new_credential(a, "--user", "alice")
    delay = assert_served_from_memory(a, b, database, token)
    print(f"B refused after the NOTIFYing write within {delay * 1000:.0f} ms")


@needs_pg
def test_pg_own_credential_revoked_on_a_is_refused_on_b_within_a_second(replicas):
    a, b = replicas
    token = new_credential(a, "--user", "alice", name="revoked-on-a")
    assert_valid(b, token)
    s = login(a, "alice")
    _, done = post_change(a, s, "/credentials", "/credentials/revoke", "/credentials", id=cid_of(token), confirm="yes")
    delay = assert_refused_within(b, token, "revoked on A at /credentials/revoke", "credential revoked", since=done)
    print(f"B refused {delay * 1000:.1f} ms after A's answer")
    check_notice(a, s, "/credentials", "Revoked “revoked-on-a”")
    # A, which never verified it, refuses it too; another credential of alice still works on B.
    assert review(a, token)["authenticated"] is False
    assert_valid(b, new_credential(a, "--user", "alice"))


@needs_pg
def test_pg_revoked_on_a_is_refused_by_a_on_its_next_review(replicas, database):
    """The replica that answered the revocation refuses the credential on its very next review, as every
    replica did before the cache (each review read the database) and as SQLite still does (the epoch is
    read per review): that guarantee must not hang on its own NOTIFY coming back in time. A's LISTEN
    backend is paused (SIGSTOP) across the revoke and the next review, so the NOTIFY cannot arrive first
    by luck (unpaused it loses that race in about 1-3 % of tries)."""
    a, _ = replicas
    listener = wait_listening(database, a)
    token = new_credential(a, "--user", "alice", name="same-replica")
    s = login(a, "alice")
    csrf = csrf_of(s.get(a.base + "/credentials").text)
    assert_valid(a, token)
    os.kill(listener, signal.SIGSTOP)
    try:
        r = s.post(a.base + "/credentials/revoke", data={"csrf": csrf, "id": cid_of(token), "confirm": "yes"}, allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"] == "/credentials", (r.status_code, r.headers)
        st = review(a, token)
    finally:
        os.kill(listener, signal.SIGCONT)
    assert st["authenticated"] is False and st["error"] == "credential revoked", (
        f"POST /credentials/revoke on A answered 303 (revoked), and A's next TokenReview of that credential says {st}: "
        f"A learns of its own change only from its NOTIFY (here held back), not when it makes it")
    assert_refused_within(a, token, "once A's NOTIFY arrives", "credential revoked")
    assert wait_listening(database, a) == listener


@needs_pg
def test_pg_user_disabled_on_a_is_refused_on_b_within_a_second(replicas):
    a, b = replicas
    token = new_credential(a, "--user", "carol")
    assert_valid(b, token)
    admin = login(a, "boss")
    _, done = post_change(a, admin, "/admin/users", "/admin/users/disable", "/admin/users", username="carol", confirm="yes")
    try:
        delay = assert_refused_within(b, token, "carol disabled on A", "owner", since=done)
        print(f"B refused carol's credential {delay * 1000:.1f} ms after A's answer")
        check_notice(a, admin, "/admin/users", "Disabled carol")
    finally:
        post_change(a, admin, "/admin/users", "/admin/users/enable", "/admin/users", username="carol")
    # Enabled again on A: accepted on B at once (refusals are never kept).
    assert_valid(b, token)


@needs_pg
def test_pg_robot_disabled_on_a_is_refused_on_b_within_a_second(replicas):
    a, b = replicas
    cli_ok(a, "robot", "add", "pg-bot", "--team", "platform", "--group", "deployers")
    token = new_credential(a, "--robot", "pg-bot")
    st = assert_valid(b, token)
    assert st["user"]["username"] == "oidc:robot:pg-bot"
    admin = login(a, "boss")
    rid = robot_id(a, admin, "pg-bot")
    _, done = post_change(a, admin, "/admin/robots", "/admin/robots/disable", "/admin/robots", id=rid, confirm="yes")
    delay = assert_refused_within(b, token, "robot disabled on A", "robot", since=done)
    print(f"B refused the robot's credential {delay * 1000:.1f} ms after A's answer")
    check_notice(a, admin, "/admin/robots", "Robot disabled")
    post_change(a, admin, "/admin/robots", "/admin/robots/enable", "/admin/robots", id=rid)
    assert_valid(b, token)


@needs_pg
def test_pg_groups_changed_by_the_cli_show_on_b_at_once(replicas):
    """The CLI is one more writer on the shared database: its change reaches B's memory the same way."""
    a, b = replicas
    add_user(a, "dora", "--group", "dev", "--group", "ops")
    token = new_credential(a, "--user", "dora")
    st = assert_valid(b, token)
    assert sorted(st["user"]["groups"]) == ["oidc:dev", "oidc:ops"], st
    cli_ok(a, "user", "set-groups", "dora", "--group", "dev")
    deadline = time.monotonic() + 1
    while True:
        st = review(b, token)
        if st["authenticated"] and st["user"]["groups"] == ["oidc:dev"]:
            break
        assert time.monotonic() < deadline, f"dora lost ops (CLI), B still says after 1 s: {st}"
        time.sleep(0.01)


@needs_pg
def test_pg_lost_listen_connection_bypasses_memory_and_reconnecting_empties_it(replicas, database):
    a, b = replicas
    a_listener = wait_listening(database, a)
    b_listener = wait_listening(database, b)
    assert a_listener != b_listener
    alice = login(a, "alice")
    x = new_credential(a, "--user", "alice", name="revoked-while-b-is-deaf")
    y = new_credential(a, "--user", "alice", name="sneaked-while-b-is-deaf")
    keep = new_credential(a, "--user", "alice", name="untouched")
    for token in (x, y, keep):
        assert_valid(b, token)
    csrf = csrf_of(alice.get(a.base + "/credentials").text)

    # B's LISTEN connection dies; right away A revokes x (its NOTIFY goes to no B connection: B is not
    # listening yet again) and y is revoked with no NOTIFY at all.
    assert psql(database, f"SELECT pg_terminate_backend({b_listener})") == "t"
    killed = time.monotonic()
    r = alice.post(a.base + "/credentials/revoke", data={"csrf": csrf, "id": cid_of(x), "confirm": "yes"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/credentials", (r.status_code, r.headers)
    sneak_revoke(database, cid_of(y))
    revoked = time.monotonic()
    for token, what in ((x, "revoked on A right after B's LISTEN connection was terminated"),
                        (y, "revoked without NOTIFY while B's LISTEN connection was down")):
        delay = assert_refused_within(b, token, what, "credential revoked")
        print(f"{what}: B refused {delay * 1000:.1f} ms after the poll began "
              f"({(revoked - killed) * 1000:.0f} ms after the kill both were revoked)")
    # Reviews that read the database still pass meanwhile.
    assert review(b, keep)["authenticated"] is True
    check_notice(a, alice, "/credentials", "Revoked “revoked-while-b-is-deaf”")

    # B reconnects (within seconds) and answers from memory again, and NOTIFYs reach it again.
    new_listener = wait_listening(database, b)
    assert new_listener != b_listener
    assert listen_backends(database, a) == [a_listener], "A's LISTEN connection was touched"
    z = new_credential(a, "--user", "alice", name="after-reconnect")
    delay = assert_served_from_memory(a, b, database, z)
    print(f"after reconnecting, B refused a NOTIFYed change within {delay * 1000:.1f} ms")
    assert_valid(b, keep)
