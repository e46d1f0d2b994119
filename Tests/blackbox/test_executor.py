"""Where request handlers run (server.tasks_on_event_loops, issue 19 fourth steps): on NIO's event
loops by default, on Swift's thread pool when turned off. Either way, many refresh chains rotating
at once on SQLite (write transactions on the writer thread, lock hand-offs between event loops)
keep every rotation single-use, while another process (the CLI) writes the same database file, so
the server's statements meet SQLite's lock and retry."""
import json
import os
import threading

import pytest

from conftest import Portal
from session_helpers import add_user, assert_dead, code_flow, login, refresh

CHAINS = 24
ROTATIONS = 12


def messages(p):
    out = []
    for line in p.logs().splitlines():
        try:
            out.append(json.loads(line).get("msg", ""))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("on_event_loops", [True, False])
def test_concurrent_rotations_stay_single_use_while_the_cli_writes(on_event_loops):
    p = Portal(extra_yaml="" if on_event_loops else "server:\n  tasks_on_event_loops: false\n", expect_setup_link=True)
    try:
        expected = "request handlers run on the HTTP event loops" if on_event_loops else \
            "request handlers run on Swift's thread pool (server.tasks_on_event_loops: false)"
        assert expected in messages(p), messages(p)[:20]
        # SQLite's writer and checkpointer threads carry their names (top -H, /proc), within Linux's 15 bytes.
        names = {open(f"/proc/{p.proc.pid}/task/{t}/comm").read().strip() for t in os.listdir(f"/proc/{p.proc.pid}/task")}
        assert {"sqlite-writer", "sqlite-ckpt"} <= names, names

        user = add_user(p, "exec-user")
        s = login(p, user)
        firsts = [code_flow(p, s)["refresh_token"] for _ in range(CHAINS)]
        results = [[] for _ in range(CHAINS)]
        failures = []

        def rotate(i):
            token = firsts[i]
            for _ in range(ROTATIONS):
                r = refresh(p, token)
                if r.status_code != 200:
                    failures.append((i, r.status_code, r.text[:200]))
                    return
                token = r.json()["refresh_token"]
                results[i].append(token)

        threads = [threading.Thread(target=rotate, args=(i,)) for i in range(CHAINS)]
        for t in threads:
            t.start()
        # Another process writes the same SQLite file meanwhile (its transactions hold the file lock).
        cli = [p.cli("user", "add", f"exec-cli-{k}", "--password-stdin", stdin="cli-password-123\n") for k in range(4)]
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "rotations hung"
        assert not failures, failures[:5]
        assert all(c.returncode == 0 for c in cli), [c.stderr for c in cli]
        issued = [tok for chain in results for tok in chain]
        assert len(issued) == CHAINS * ROTATIONS and len(set(issued)) == len(issued)

        # Single use held under the load: an old token of each chain is refused (replay), and the
        # replay ends that chain's family, so its newest token is dead too.
        for i in range(0, CHAINS, 6):
            assert_dead(refresh(p, results[i][0]))
            assert_dead(refresh(p, results[i][-1]))
        # The chains nobody replayed still work.
        r = refresh(p, results[1][-1])
        assert r.status_code == 200, r.text
    finally:
        code = p.stop()
    assert code == 0, "portal did not shut down cleanly on SIGTERM"
