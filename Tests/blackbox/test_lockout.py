"""Sign-in throttling that protects people (issue 13 §5), against a real `portal serve`:
other loopback addresses (127.0.0.2, …) stand in for other machines, and X-Forwarded-For for
clients behind a trusted reverse proxy."""
import requests

from conftest import Portal
from test_hardening import PASSWORD, add_user, audit, csrf_of, session_from, try_login


def strict_portal(extra=""):
    """A portal with the default thresholds (5 per account and address, 20 per address on
    accounts never used there) instead of conftest's relaxed address limit."""
    p = Portal(extra_yaml=extra)
    text = open(p.config).read()
    text = text.replace("  max_failures_per_address: 1000\n", "  max_failures_per_address: 20\n")
    open(p.config, "w").write(text)
    p.stop()
    p.start()
    return p


def test_an_address_hammering_admin_does_not_stop_admin_at_their_own_address():
    p = strict_portal()
    try:
        add_user(p, "admin", "--admin")
        home, attacker = session_from("127.0.0.1"), session_from("127.0.0.2")
        assert try_login(home, p, "admin", PASSWORD).status_code == 303       # admin's usual address, now familiar
        statuses = [try_login(attacker, p, "admin", f"guess-{i}").status_code for i in range(30)]
        assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}, statuses
        # Even the right password is delayed from the attacker's address …
        assert try_login(attacker, p, "admin", PASSWORD).status_code == 429
        # … while admin signs in from home at once.
        r = try_login(session_from("127.0.0.1"), p, "admin", PASSWORD)
        assert r.status_code == 303, r.text
        # The delays are audited with the counter that caused them.
        assert "throttled" in audit(p, "login.failure")
    finally:
        p.stop()


def test_failures_through_a_trusted_proxy_do_not_lock_other_people_out():
    p = strict_portal("server:\n  trusted_proxies: [\"127.0.0.1/32\"]\n")
    try:
        for u in ("alice", "bob", "carol"):
            add_user(p, u)
        proxy = session_from("127.0.0.1")        # the ingress: every request arrives from it
        sprayer = {"X-Forwarded-For": "203.0.113.9"}
        # carol works in the same building as the sprayer and has signed in from there before.
        assert try_login(proxy, p, "carol", PASSWORD, headers=sprayer).status_code == 303
        statuses = [try_login(requests.Session(), p, user, "Winter2026!", headers=sprayer).status_code
                    for user in ["alice", "bob", "dave", "erin", "frank"] * 5]
        assert statuses.count(429) > 0, statuses
        # Everyone else behind the same proxy signs in.
        for user, addr in [("alice", "198.51.100.7"), ("bob", "198.51.100.8")]:
            r = try_login(requests.Session(), p, user, PASSWORD, headers={"X-Forwarded-For": addr})
            assert r.status_code == 303, (user, r.status_code)
        # carol, familiar at the sprayer's address, is not delayed by the spray either.
        assert try_login(requests.Session(), p, "carol", PASSWORD, headers=sprayer).status_code == 303
        # The audit log names the client, not the proxy.
        assert "203.0.113.9" in audit(p, "login.failure")
        listed = p.cli("throttle", "list").stdout
        assert "addr:203.0.113.9" in listed and "127.0.0.1" not in listed
    finally:
        p.stop()


def test_a_forged_x_forwarded_for_from_an_untrusted_peer_changes_nothing():
    p = strict_portal("server:\n  trusted_proxies: [\"10.0.0.0/8\"]\n")
    try:
        add_user(p, "alice")
        attacker = session_from("127.0.0.2")
        statuses = []
        for i in range(6):
            # A fresh forged address on every attempt: were it believed, no counter would ever fill.
            r = try_login(attacker, p, "alice", f"guess-{i}", headers={"X-Forwarded-For": f"192.0.2.{i + 1}"})
            statuses.append(r.status_code)
        assert statuses == [401, 401, 401, 401, 429, 429], statuses
        events = audit(p, "login.failure")
        assert "127.0.0.2" in events and "192.0.2." not in events
        assert "pair:alice|127.0.0.2" in p.cli("throttle", "list").stdout
    finally:
        p.stop()


def test_throttles_are_listed_and_cleared_in_the_admin_ui_and_the_cli():
    p = strict_portal()
    try:
        add_user(p, "boss", "--admin")
        add_user(p, "alice")
        boss = session_from("127.0.0.1")
        assert try_login(boss, p, "boss", PASSWORD).status_code == 303
        attacker = session_from("127.0.0.3")
        for i in range(5):
            try_login(attacker, p, "alice", f"nope-{i}")
        assert try_login(attacker, p, "alice", PASSWORD).status_code == 429
        page = boss.get(p.base + "/admin/throttles")
        assert page.status_code == 200 and "pair:alice|127.0.0.3" in page.text and "alice" in page.text
        # Clearing needs the CSRF token …
        assert boss.post(p.base + "/admin/throttles/clear", data={"key": "pair:alice|127.0.0.3"}).status_code == 403
        assert try_login(attacker, p, "alice", PASSWORD).status_code == 429
        # … and with it, the next attempt goes through.
        r = boss.post(p.base + "/admin/throttles/clear", data={"csrf": csrf_of(page.text), "key": "pair:alice|127.0.0.3"})
        assert r.status_code == 200 and "Cleared" in r.text
        assert try_login(attacker, p, "alice", PASSWORD).status_code == 303
        assert "admin.throttle.clear" in audit(p, "admin.throttle.clear")
        # The CLI: list and clear by account.
        for i in range(5):
            try_login(attacker, p, "alice", f"nope-again-{i}")
        assert "pair:alice|127.0.0.3" in p.cli("throttle", "list").stdout
        r = p.cli("throttle", "clear", "--account", "alice")
        assert r.returncode == 0 and "pair:alice|127.0.0.3" in r.stdout
        assert "pair:alice" not in p.cli("throttle", "list").stdout
        assert p.cli("throttle", "clear").returncode != 0      # says what to name
    finally:
        p.stop()


def test_the_login_form_cannot_reach_the_clients_counters_or_store_control_characters():
    p = strict_portal()
    try:
        attacker = session_from("127.0.0.4")
        for i in range(8):
            assert try_login(attacker, p, "client:rp-confidential", f"x-{i}").status_code == 401
            try_login(attacker, p, "al\tice", f"x-{i}")
        listed = p.cli("throttle", "list").stdout
        assert "client:" not in listed and "\t\t" not in listed and "al\tice" not in listed, listed
    finally:
        p.stop()
