"""Passkeys (WebAuthn), issue 17: malformed input. ~300 malformed credentials (made from a valid
one by softauthn.py) at each of the four passkey endpoints (/login/passkey, /login/factor, /step-up,
/account/factors/passkey) are a 4xx, never a 5xx, store nothing and never crash the portal.
"""
import base64
import json
import os
import random
import shutil

import pytest
import requests

import softauthn as sa
from conftest import Portal
from passkey_helpers import (RP_ID, Web, add_user, assert_no_crash, assert_signed_in, enrolled, factor_rows, passkey_login,
                             signed_in_with_password, to_factor_page)


# ---------------------------------------------------------------------------------------------
# Mutations of a valid credential


def _b64(b):
    return sa.b64url(b)


def _with(cred, path, value):
    """`cred` as JSON with cred[path...] = value (`...` deletes it)."""
    c = json.loads(json.dumps(cred))
    node = c
    for k in path[:-1]:
        node = node[k]
    if value is ...:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return json.dumps(c)


def _with_ids(cred, value):
    """Both `id` and `rawId` (the portal may read either)."""
    return _with(json.loads(_with(cred, ["id"], value)), ["rawId"], value)


def _mutate_client_data(c, change):
    d = json.loads(sa.unb64url(c["response"]["clientDataJSON"]))
    return _with(c, ["response", "clientDataJSON"], _b64(json.dumps(change(d)).encode()))


def _att(c, change):
    a = sa.cbor_decode(sa.unb64url(c["response"]["attestationObject"]))
    return _with(c, ["response", "attestationObject"], _b64(sa.cbor_encode(change(a))))


def _truncate(c, key, r):
    raw = sa.unb64url(c["response"][key])
    return _with(c, ["response", key], _b64(raw[:int(r * (len(raw) - 1))]))


def _flip_somewhere(c, key, r):
    raw = bytearray(sa.unb64url(c["response"][key]))
    i = int(r * len(raw))
    raw[i] ^= 1 << (int(r * 1e6) % 8)
    return _with(c, ["response", key], _b64(bytes(raw)))


HUGE_HEADERS = ["5bffffffffffffffff", "7bffffffffffffffff", "9bffffffffffffffff", "bbffffffffffffffff",
                "5affffffff", "9affffffff", "baffffffff", "1bffffffffffffffff", "3bffffffffffffffff", "dbffffffffffffffff00"]
ODD_CBOR = ["81" * 500 + "00", "81" * 30000 + "00", "a101" * 500 + "00", "c0" * 1000 + "00", "9f" * 200, "bf" * 200,
            "5f41004100ff", "7f6161ff", "1c", "1f", "ff", "f8", "f820", "f93c00", "fb7ff8000000000000", "f7", "", "00",
            "a0", "80", "40", "60", "a3" + "6161" * 3]
CBOR_ATTACKS = [bytes.fromhex(h) for h in HUGE_HEADERS + ODD_CBOR]
BAD_COSE_KEYS = [{1: 99, 3: -7}, {1: 2, 3: -7, -1: 1, -2: b"\x01", -3: b"\x02"}, {1: 2, 3: -7, -1: 99, -2: bytes(32), -3: bytes(32)},
                 {1: 2, 3: -7, -1: 1, -2: bytes(32), -3: bytes(32)},   # not a point of the curve
                 {1: 2, 3: -7, -1: 1, -2: bytes(32)}, {1: 1, 3: -8, -1: 6, -2: bytes(31)}, {1: 3, 3: -257, -1: b"", -2: b"\x01\x00\x01"},
                 {1: 2, 3: -999999, -1: 1, -2: bytes(32), -3: bytes(32)}, {1: "EC2", 3: "ES256"}, {}, [], 7, "key", {1: [2]}]


def _auth_data_attacks(valid: bytes, registration: bool):
    """authenticatorData made malformed (all of them also break the signature over it)."""
    rp_hash, flags, count = valid[:32], valid[32], valid[33:37]
    out = [valid[:n] for n in (0, 1, 31, 32, 33, 36)]
    out += [rp_hash + bytes([flags | sa.AT]) + count,                                        # AT, no attested data
            rp_hash + bytes([flags | sa.AT]) + count + bytes(16) + b"\xff\xff" + b"x" * 10,   # id length past the end
            rp_hash + bytes([flags | sa.AT]) + count + bytes(16) + b"\x00\x00",                # empty id, no key
            rp_hash + bytes([flags | sa.ED]) + count + bytes.fromhex("81" * 500 + "00"),       # extensions nested deep
            rp_hash + bytes([flags | sa.ED]) + count + bytes.fromhex("bbffffffffffffffff"),
            rp_hash + bytes([flags | sa.ED]) + count,                                        # ED, nothing there
            valid + b"\x00" * 7,                                                             # trailing bytes
            bytes([rp_hash[0] ^ 1]) + valid[1:],                                             # rpIdHash flipped
            rp_hash + bytes([0]) + count + valid[37:],                                       # no flags at all
            valid[:37] + bytes(random.Random(len(valid)).randbytes(200))]
    if registration:
        head = valid[:53]
        n = int.from_bytes(valid[53:55], "big")
        cid = valid[55:55 + n]
        out += [head + len(cid).to_bytes(2, "big") + cid + sa.cbor_encode(k) for k in BAD_COSE_KEYS]
        out += [head + len(cid).to_bytes(2, "big") + cid + raw for raw in CBOR_ATTACKS[:12]]
    return out


ATTESTATION_SHAPES = [
    lambda a: 5, lambda a: [a["authData"]], lambda a: {"fmt": a["fmt"]}, lambda a: {"fmt": a["fmt"], "attStmt": a["attStmt"]},
    lambda a: {**a, "fmt": 7}, lambda a: {**a, "fmt": "tpm"}, lambda a: {**a, "fmt": "android-safetynet"},
    lambda a: {**a, "fmt": ""}, lambda a: {**a, "attStmt": []}, lambda a: {**a, "attStmt": 5}, lambda a: {**a, "authData": 37},
    lambda a: {**a, "authData": "text"}, lambda a: {**a, "authData": b""},
    lambda a: {**a, "attStmt": {"alg": -7, "sig": b""}}, lambda a: {**a, "attStmt": {"alg": -7}},
    lambda a: {**a, "attStmt": {"sig": a["attStmt"].get("sig", b"")}}, lambda a: {**a, "attStmt": {"alg": "ES256", "sig": 5}},
    lambda a: {**a, "attStmt": {"alg": -257, "sig": bytes(256)}}, lambda a: {**a, "attStmt": {"alg": -8, "sig": bytes(64)}},
    lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": []}}, lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": [bytes(300)]}},
    lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": [b"\x30\x82\xff\xff"]}}, lambda a: {**a, "attStmt": {**a["attStmt"], "x5c": 5}},
    lambda a: {"fmt": "fido-u2f", "attStmt": {"sig": bytes(70), "x5c": [b"\x30\x82\xff\xff"]}, "authData": a["authData"]},
]


def mutations(endpoint: str, seed: int, count: int = 300):
    """`count` functions (valid credential dict) -> str (the `credential` form field), each breaking
    something an RP must check: endpoint "login" (/login/passkey), "factor" (/login/factor, /step-up)
    or "register" (/account/factors/passkey; the valid base is packed self attestation, so every
    byte of clientDataJSON and authData is under a signature)."""
    rng = random.Random(seed)
    registration = endpoint == "register"
    fields = ["clientDataJSON"] + (["attestationObject"] if registration else ["authenticatorData", "signature"])
    m = []
    add = m.append
    # The whole field: not JSON, JSON of the wrong shape, deep JSON, big.
    # (The portal reads at most 64 KiB of form: all but one stay below, so they reach the passkey code;
    # brackets and quotes take three bytes each once URL-encoded.)
    for raw in ["", " ", "null", "true", "0", "-1", "1e999", '"credential"', "[]", "{}", "{", "}", "[" * 18000,
                '{"a":' * 4000, "\x00\x01\x02", "A" * 50000, "A" * 200000, '{"id": }', "{'id': 'x'}", "\ufeff{}"]:
        add(lambda c, raw=raw: raw)
    add(lambda c: json.dumps([c]))
    add(lambda c: json.dumps(c) + json.dumps(c))
    add(lambda c: base64.b64encode(json.dumps(c).encode()).decode())
    # Missing members, and members of the wrong JSON type.
    add(lambda c: _with_ids(c, ...))
    add(lambda c: _with(c, ["response"], ...))
    for key in fields:
        add(lambda c, key=key: _with(c, ["response", key], ...))
    for bad in [None, 0, -1, 1.5, True, [], {}, [1, 2], {"a": 1}, "", "x" * 20000]:
        add(lambda c, bad=bad: _with_ids(c, bad))
        add(lambda c, bad=bad: _with(c, ["response"], bad))
        for key in fields:
            add(lambda c, key=key, bad=bad: _with(c, ["response", key], bad))
        if endpoint == "login" and bad not in (None, ""):   # missing: test_a_passkey_sign_in_needs_the_user_handle
            add(lambda c, bad=bad: _with(c, ["response", "userHandle"], bad))
    # Broken base64url in every binary member.
    for bad in ["!!!!", "====", "AAAA=", "A", "AB+/", "AA AA", "\u00e9\u00e9", "%00", "-_-_=", "AAAAAAAA" * 1000 + "*"]:
        add(lambda c, bad=bad: _with_ids(c, bad))
        for key in fields:
            add(lambda c, key=key, bad=bad: _with(c, ["response", key], bad))
    add(lambda c: _with_ids(c, _b64(os.urandom(32))))   # a credential nobody registered
    # Random bytes of many lengths.
    for key in fields:
        for n in (0, 1, 2, 16, 36, 37, 38, 64, 255, 1000, 40000):
            add(lambda c, key=key, n=n, r=rng.random(): _with(c, ["response", key], _b64(random.Random(r).randbytes(n))))
    # clientDataJSON: not UTF-8, not an object, members of the wrong type or missing.
    for cdj in [b"\xff\xfe\xfd", b"[]", b"null", b"{}", b'"webauthn.get"', b"{" * 10000, b'{"type":' * 3000,
                b"[" * 30000, b'{"type":1,"challenge":2,"origin":3}', b'{"type":"webauthn.get"}', b'{"type":"webauthn.create"}',
                b'{"challenge":"AAAA","origin":"x"}', b'{"type":"webauthn.get","challenge":[],"origin":{}}', b"\x00" * 64,
                b'{"type":"webauthn.get","challenge":"\\ud800","origin":"\\udfff"}']:
        add(lambda c, cdj=cdj: _with(c, ["response", "clientDataJSON"], _b64(cdj)))
    for change in [lambda d: {**d, "challenge": d["challenge"] + "AAAA"}, lambda d: {**d, "challenge": 12345},
                   lambda d: {**d, "origin": [d["origin"]]}, lambda d: {k: v for k, v in d.items() if k != "challenge"},
                   lambda d: {k: v for k, v in d.items() if k != "origin"}, lambda d: {k: v for k, v in d.items() if k != "type"},
                   lambda d: {**d, "type": None}, lambda d: {**d, "challenge": "!!not base64!!"}, lambda d: {**d, "challenge": ""},
                   lambda d: {**d, "origin": d["origin"] + "/"}, lambda d: {**d, "origin": d["origin"].upper()}]:
        add(lambda c, change=change: _mutate_client_data(c, change))
    # CBOR: huge length headers, deep nesting, indefinite lengths, truncation, wrong shapes.
    if registration:
        for raw in CBOR_ATTACKS:
            add(lambda c, raw=raw: _with(c, ["response", "attestationObject"], _b64(raw)))
            add(lambda c, raw=raw: _att(c, lambda a: {**a, "authData": sa.Raw(raw)}))
            add(lambda c, raw=raw: _att(c, lambda a: {**a, "attStmt": sa.Raw(raw)}))
        for _ in range(12):
            add(lambda c, r=rng.random(): _truncate(c, "attestationObject", r))
        for shape in ATTESTATION_SHAPES:
            add(lambda c, shape=shape: _att(c, shape))
        for i in range(43):
            add(lambda c, i=i: _att(c, lambda a: {**a, "authData": (lambda x: x[i % len(x)])(_auth_data_attacks(a["authData"], True))}))
    else:
        for raw in CBOR_ATTACKS:
            add(lambda c, raw=raw: _with(c, ["response", "authenticatorData"], _b64(raw)))
        for i in range(16):
            add(lambda c, i=i: _with(c, ["response", "authenticatorData"],
                                     _b64(_auth_data_attacks(sa.unb64url(c["response"]["authenticatorData"]), False)[i])))
        for _ in range(6):
            add(lambda c, r=rng.random(): _truncate(c, "authenticatorData", r))
        for sig in [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff\x02\x01\x01", bytes.fromhex("3006020100020100"), bytes(64), bytes(72),
                    b"\x30\x45\x02\x21" + b"\xff" * 66, b"\xff" * 512, b"\x30\x80" + bytes(70)]:
            add(lambda c, sig=sig: _with(c, ["response", "signature"], _b64(sig)))
        add(lambda c: _with(c, ["response", "signature"], _b64(sa.unb64url(c["response"]["signature"])[:-1])))
        add(lambda c: _with(c, ["response", "signature"], _b64(sa.unb64url(c["response"]["signature"]) + b"\x00")))
        if endpoint == "login":   # a user handle that is not the credential's owner
            for uh in [_b64(os.urandom(16)), _b64(os.urandom(64)), "x" * 5000]:
                add(lambda c, uh=uh: _with(c, ["response", "userHandle"], uh))
    # Bit flips anywhere in the binary members (all of them signed).
    while len(m) < count:
        add(lambda c, key=rng.choice(fields), r=rng.random(): _flip_somewhere(c, key, r))
    if len(m) > count:
        keep = sorted(random.Random(seed + 1).sample(range(len(m)), count))
        m = [m[i] for i in keep]
    return m


# ---------------------------------------------------------------------------------------------
# Every endpoint


@pytest.fixture
def fuzz_portal():
    """A portal of its own (throttles out of the way, so every post reaches the passkey code)."""
    p = Portal(issuer_host="localhost")
    p.stop()
    with open(p.config) as f:
        config = f.read()
    config = config.replace("max_failures_per_user: 5", "max_failures_per_user: 1000").replace(
        "max_failures_per_address: 1000", "max_failures_per_address: 100000")
    with open(p.config, "w") as f:
        f.write(config)
    p.start()
    yield p
    if p.proc.poll() is None:
        p.stop()
    shutil.rmtree(p.dir, ignore_errors=True)


def test_malformed_credentials_are_refused_at_every_endpoint_and_never_crash_the_portal(fuzz_portal):
    p = fuzz_portal
    holder, holder_auth = enrolled(p, prefix="fuzzholder")
    newcomer = add_user(p, "fuzznew")

    def signed_in_with_the_passkey():
        web, r = passkey_login(p, holder_auth)
        assert_signed_in(web, r)
        return web

    # path, the browser (made just before its turn: the second-factor step lasts 5 minutes), the page with
    # the form, the options' purpose, the mutation set, other form fields.
    endpoints = [
        ("/login/passkey", lambda: Web(p), "/login", "login", "login", {}),
        ("/login/factor", lambda: to_factor_page(p, holder), "/login/factor", "factor", "factor", {}),
        ("/step-up", signed_in_with_the_passkey, "/step-up?next=/account/factors", "step-up", "factor", {"next": "/account/factors"}),
        ("/account/factors/passkey", lambda: signed_in_with_password(p, newcomer), "/account/factors", "register", "register",
         {"name": "fuzz"}),
    ]
    bad, too_large, webs = [], {}, {}
    for n, (path, make_web, page, purpose, kind, extra) in enumerate(endpoints):
        web = webs[path] = make_web()
        csrf = web.csrf(page)
        for i, mutate in enumerate(mutations(kind, seed=17 + n)):
            opts = sa.options_response(web.s, web.base, csrf, purpose)
            assert opts.status_code < 500, (path, "options", opts.status_code)
            if opts.status_code == 200:
                options = opts.json()
            else:   # e.g. locked out: any challenge will do, the credential is broken anyway
                options = {"publicKey": {"challenge": sa.b64url(os.urandom(32)), "rpId": RP_ID,
                                         "rp": {"id": RP_ID}, "user": {"id": sa.b64url(b"x")}}}
            if kind == "register":
                valid = sa.SoftAuthn().register(options, p.issuer, RP_ID, fmt="packed-self", store=False, check_params=False)
            else:
                valid = holder_auth.assert_(options, p.issuer, RP_ID, credential_id=holder_auth.credentials[0].id)
            field = mutate(valid)
            data = {"csrf": csrf, "credential": field.encode("utf-8", "surrogatepass"), **extra}
            try:
                r = web.post(path, data)
            except requests.RequestException as e:
                bad.append((path, i, "no answer", repr(e)[:200]))
                assert p.proc.poll() is None, f"the portal exited at {path} mutation {i}:\n{p.logs()[-3000:]}"
                continue
            if not 400 <= r.status_code < 500:
                bad.append((path, i, r.status_code, field[:200]))
            too_large[path] = too_large.get(path, 0) + (r.status_code == 413)
    assert p.proc.poll() is None, "the portal exited:\n" + p.logs()[-3000:]
    assert requests.get(p.base + "/readyz", timeout=10).status_code == 200
    assert not bad, f"{len(bad)} answers that were not 4xx, e.g. {bad[:10]}"
    # The mutations are sized to reach the passkey code, not the body limit.
    assert all(n <= 10 for n in too_large.values()), too_large
    # Nothing was stored: the newcomer has no factor, the holder still exactly one.
    assert factor_rows(webs["/account/factors/passkey"]) == []
    assert len(factor_rows(webs["/step-up"])) == 1
    # And the portal still signs people in with passkeys.
    web, r = passkey_login(p, holder_auth)
    assert_signed_in(web, r)
    assert p.stop() == 0
    assert_no_crash(p)
