"""A software WebAuthn authenticator (plus the browser's part of the ceremony) for the black-box tests.

It makes the `credential` form field the portal's page script posts (issue 17 contract):

    {"id": b64url, "rawId": b64url, "type": "public-key",
     "response": {"clientDataJSON": b64url,
                  "attestationObject": b64url                       (registration)
                  | "authenticatorData": b64url, "signature": b64url,
                    "userHandle": b64url | null                     (assertion)}}

    auth = SoftAuthn()                                   # ES256; SoftAuthn("EdDSA"), SoftAuthn("RS256")
    opts = fetch_options(session, base, csrf, "register")  # POST /webauthn/options as the page would
    cred = auth.register(opts, origin, rp_id)            # fmt="none" | "packed-self" | "packed-x5c"
    opts = fetch_options(session, base, csrf, "login")
    cred = auth.assert_(opts, origin, rp_id)             # the counter goes up by one per use

Knobs to break things (each is what one refusal test needs): `origin` (written into clientDataJSON
as given), `rp_id` (hashed into authenticatorData: another RP id gives a wrong hash), `type_`
(clientDataJSON type), `up=False` (flags without user presence), `uv`, `be`/`bs` (backup flags),
`tamper=True` (signature or attestation signature with one bit flipped), `sign_count=` (force the
counter, e.g. lower than before: a clone), `challenge=` (another challenge than the options').

No dependency beyond `cryptography`. The CBOR encoder/decoder (definite lengths, what CTAP2 uses)
is in cbor_lite.py and the independent relying-party check in webauthn_check.py; both are
re-exported here, so `softauthn.cbor_encode`, `softauthn.verify_assertion`, `softauthn.AT`... work.
`python softauthn.py` runs the self-checks (CBOR test vectors of RFC 8949 appendix A, and each
algorithm's registration and assertion checked by the independent verifier).
"""
import json
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

import cbor_lite
# Re-exported: the tests use them as softauthn.<name>.
from cbor_lite import RFC8949_VECTORS, Raw, Tag, cbor_decode, cbor_decode_prefix, cbor_encode  # noqa: F401
from webauthn_check import (AT, BE, BS, ED, UP, UV, b64url, cose_verify, parse_auth_data, sha256,  # noqa: F401
                            unb64url, verify_assertion, verify_registration)


# ---------------------------------------------------------------------------------------------
# Keys (COSE)

ALGS = {"ES256": -7, "EdDSA": -8, "RS256": -257}
ALG_NAMES = {v: k for k, v in ALGS.items()}


class Key:
    def __init__(self, alg="ES256", private_key=None):
        if alg not in ALGS:
            raise ValueError(f"unknown algorithm {alg}")
        self.alg = alg
        if private_key is None:
            private_key = {"ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
                           "EdDSA": ed25519.Ed25519PrivateKey.generate,
                           "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}[alg]()
        self.private = private_key

    @classmethod
    def from_pkcs8(cls, der: bytes) -> "Key":
        k = serialization.load_der_private_key(der, password=None)
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return cls("ES256", k)
        if isinstance(k, ed25519.Ed25519PrivateKey):
            return cls("EdDSA", k)
        if isinstance(k, rsa.RSAPrivateKey):
            return cls("RS256", k)
        raise ValueError("unsupported key type")

    @property
    def cose_alg(self) -> int:
        return ALGS[self.alg]

    def pkcs8(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    def cose(self) -> dict:
        pub = self.private.public_key()
        if self.alg == "ES256":
            n = pub.public_numbers()
            return {1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")}
        if self.alg == "EdDSA":
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {1: 1, 3: -8, -1: 6, -2: raw}
        n = pub.public_numbers()
        return {1: 3, 3: -257, -1: n.n.to_bytes((n.n.bit_length() + 7) // 8, "big"), -2: n.e.to_bytes(3, "big")}

    def sign(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            return self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        if self.alg == "EdDSA":
            return self.private.sign(data)
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------------------------------------
# authenticatorData (the flags and parse_auth_data are the checker's, in webauthn_check.py)


def flags_byte(up=True, uv=True, be=False, bs=False, at=False, ed=False) -> int:
    return (UP if up else 0) | (UV if uv else 0) | (BE if be else 0) | (BS if bs else 0) | (AT if at else 0) | (ED if ed else 0)


def auth_data(rp_id: str, flags: int, counter: int, attested: bytes = b"", rp_id_hash: bytes = None) -> bytes:
    return (rp_id_hash if rp_id_hash is not None else sha256(rp_id.encode())) + bytes([flags]) + \
        (counter & 0xFFFFFFFF).to_bytes(4, "big") + attested


# ---------------------------------------------------------------------------------------------
# The authenticator


@dataclass
class StoredCredential:
    id: bytes
    key: Key
    rp_id: str
    user_handle: bytes = None
    sign_count: int = 0
    be: bool = False
    bs: bool = False
    extra: dict = field(default_factory=dict)

    def to_selenium(self, sign_count=None):
        """A resident credential for `driver.add_credential` (Chromium takes ES256 PKCS#8 keys)."""
        from selenium.webdriver.common.virtual_authenticator import Credential
        return Credential.create_resident_credential(self.id, self.rp_id, self.user_handle, self.key.pkcs8(),
                                                     self.sign_count if sign_count is None else sign_count)


def _public_key_options(options):
    if isinstance(options, (str, bytes)):
        options = json.loads(options)
    return options.get("publicKey", options)


def client_data(type_, challenge, origin, cross_origin=False) -> bytes:
    """As Chromium writes it: type, challenge, origin, crossOrigin (compact JSON)."""
    return json.dumps({"type": type_, "challenge": challenge, "origin": origin, "crossOrigin": cross_origin},
                      separators=(",", ":")).encode()


def _flip(b: bytes, index=-1) -> bytes:
    b = bytearray(b)
    b[index] ^= 0x01
    return bytes(b)


class NotAllowed(Exception):
    """What navigator.credentials would reject with NotAllowedError / InvalidStateError."""


class SoftAuthn:
    def __init__(self, alg="ES256", aaguid=bytes(16)):
        self.alg = alg
        self.aaguid = aaguid
        self.credentials: list[StoredCredential] = []

    # -- registration (navigator.credentials.create + the authenticator)

    def register(self, options, origin, rp_id=None, fmt="none", uv=True, be=False, bs=None, up=True, alg=None,
                 type_="webauthn.create", challenge=None, tamper=False, sign_count=0, credential_id=None,
                 check_params=True, store=True) -> dict:
        pk = _public_key_options(options)
        rp_id = rp_id if rp_id is not None else (pk.get("rp") or {}).get("id")
        alg = alg or self.alg
        if check_params:
            offered = [p.get("alg") for p in pk.get("pubKeyCredParams", [])]
            if offered and ALGS[alg] not in offered:
                raise NotAllowed(f"{alg} ({ALGS[alg]}) is not in pubKeyCredParams {offered}")
            excluded = {unb64url(c["id"]) for c in pk.get("excludeCredentials") or []}
            if any(c.id in excluded for c in self.credentials):
                raise NotAllowed("InvalidStateError: this authenticator already holds an excluded credential")
        key = Key(alg)
        cred_id = credential_id or os.urandom(32)
        user_handle = unb64url(pk["user"]["id"]) if (pk.get("user") or {}).get("id") else None
        bs = be if bs is None else bs
        cdj = client_data(type_, challenge if challenge is not None else pk["challenge"], origin)
        attested = self.aaguid + len(cred_id).to_bytes(2, "big") + cred_id + cbor_encode(key.cose())
        ad = auth_data(rp_id, flags_byte(up=up, uv=uv, be=be, bs=bs, at=True), sign_count, attested)
        signed = ad + sha256(cdj)
        if fmt == "none":
            att = {"fmt": "none", "attStmt": {}, "authData": ad}
        elif fmt == "packed-self":
            sig = key.sign(signed)
            att = {"fmt": "packed", "attStmt": {"alg": key.cose_alg, "sig": _flip(sig) if tamper else sig}, "authData": ad}
        elif fmt == "packed-x5c":
            att_key = ec.generate_private_key(ec.SECP256R1())
            sig = att_key.sign(signed, ec.ECDSA(hashes.SHA256()))
            att = {"fmt": "packed", "attStmt": {"alg": -7, "sig": _flip(sig) if tamper else sig,
                                                "x5c": [attestation_certificate(att_key, self.aaguid)]}, "authData": ad}
        else:
            raise ValueError(f"unknown attestation format {fmt}")
        if store:
            self.credentials.append(StoredCredential(cred_id, key, rp_id, user_handle, sign_count, be, bs))
        return {"id": b64url(cred_id), "rawId": b64url(cred_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(cdj), "attestationObject": b64url(cbor_encode(att))}}

    # -- authentication (navigator.credentials.get + the authenticator)

    def pick(self, pk, rp_id, credential_id=None) -> StoredCredential:
        if credential_id is not None:
            want = credential_id if isinstance(credential_id, bytes) else unb64url(credential_id)
            for c in self.credentials:
                if c.id == want:
                    return c
            raise NotAllowed("no such credential")
        allowed = [unb64url(c["id"]) for c in pk.get("allowCredentials") or []]
        candidates = [c for c in self.credentials if (c.id in allowed if allowed else c.rp_id == rp_id)]
        if not candidates:
            raise NotAllowed("no credential for these options")
        return candidates[-1]

    def assert_(self, options, origin, rp_id=None, uv=True, sign_count=None, up=True, be=None, bs=None,
                type_="webauthn.get", challenge=None, tamper=False, credential_id=None, user_handle=...) -> dict:
        pk = _public_key_options(options)
        # The authenticator finds its credential by the options' RP id; `rp_id` is what it hashes
        # (another one makes a wrong rpIdHash).
        cred = self.pick(pk, pk.get("rpId") or rp_id, credential_id)
        rp_id = rp_id if rp_id is not None else pk.get("rpId")
        if sign_count is None:
            cred.sign_count += 1
            counter = cred.sign_count
        else:
            counter = sign_count
        be = cred.be if be is None else be
        bs = cred.bs if bs is None else bs
        cdj = client_data(type_, challenge if challenge is not None else pk["challenge"], origin)
        ad = auth_data(rp_id, flags_byte(up=up, uv=uv, be=be, bs=bs), counter)
        sig = cred.key.sign(ad + sha256(cdj))
        if tamper:
            sig = _flip(sig, len(sig) // 2)
        uh = cred.user_handle if user_handle is ... else user_handle
        return {"id": b64url(cred.id), "rawId": b64url(cred.id), "type": "public-key",
                "response": {"clientDataJSON": b64url(cdj), "authenticatorData": b64url(ad), "signature": b64url(sig),
                             "userHandle": b64url(uh) if uh is not None else None}}

    def add(self, key: Key = None, rp_id="localhost", user_handle=None, sign_count=0, credential_id=None, be=False, bs=False):
        """A credential the RP never saw (or one taken from Chromium's virtual authenticator)."""
        cred = StoredCredential(credential_id or os.urandom(32), key or Key(self.alg), rp_id, user_handle, sign_count, be, bs)
        self.credentials.append(cred)
        return cred

    def import_selenium(self, credential):
        """A credential read with `driver.get_credentials()` (selenium's Credential)."""
        return self.add(Key.from_pkcs8(credential._private_key), credential.rp_id, credential._user_handle,
                        credential.sign_count, credential._id)


def attestation_certificate(att_key, aaguid: bytes) -> bytes:
    """A self-signed packed attestation certificate (the x5c an authenticator vendor's key would carry)."""
    import datetime
    from cryptography.x509.oid import NameOID, ObjectIdentifier
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Soft Authn"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "softauthn")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(att_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4"), b"\x04\x10" + aaguid), critical=False)
            .sign(att_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------------------------
# The page script's part: POST /webauthn/options


def options_response(session, base, csrf, purpose, **extra):
    return session.post(base + "/webauthn/options", data={"csrf": csrf, "purpose": purpose, **extra}, allow_redirects=False,
                        timeout=15)


def fetch_options(session, base, csrf, purpose, **extra) -> dict:
    """The JSON {"publicKey": {...}} the page script gets; asserts 200 JSON."""
    r = options_response(session, base, csrf, purpose, **extra)
    assert r.status_code == 200, (purpose, r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers.get("Content-Type")
    body = r.json()
    assert isinstance(body.get("publicKey"), dict) and body["publicKey"].get("challenge"), body
    return body


# ---------------------------------------------------------------------------------------------
# Self-checks


def selftest(verbose=False):
    assert cbor_lite.selftest()
    origin, rp = "http://localhost:8080", "localhost"
    for alg in ALGS:
        for fmt in ("none", "packed-self"):
            a = SoftAuthn(alg)
            ch = b64url(os.urandom(32))
            opts = {"publicKey": {"challenge": ch, "rp": {"id": rp, "name": "x"},
                                  "user": {"id": b64url(b"uh-1"), "name": "u", "displayName": "U"},
                                  "pubKeyCredParams": [{"type": "public-key", "alg": v} for v in ALGS.values()]}}
            reg = a.register(json.dumps(opts), origin, rp, fmt=fmt)
            assert set(reg) == {"id", "rawId", "type", "response"} and set(reg["response"]) == {"clientDataJSON", "attestationObject"}
            ad = verify_registration(reg, ch, origin, rp)
            assert ad["public_key"][3] == ALGS[alg] and not ad["be"] and ad["uv"]
            pub = ad["public_key"]
            stored = 0
            for _ in range(2):
                ch2 = b64url(os.urandom(32))
                got = a.assert_({"publicKey": {"challenge": ch2, "rpId": rp}}, origin, rp)
                assert unb64url(got["response"]["userHandle"]) == b"uh-1"
                stored = verify_assertion(got, pub, ch2, origin, rp, stored)["sign_count"]
            assert stored == 2
            # Every knob breaks what it should.
            ch3 = b64url(os.urandom(32))
            o3 = {"publicKey": {"challenge": ch3, "rpId": rp, "allowCredentials": [{"type": "public-key", "id": reg["id"]}]}}
            broken = {
                "origin": a.assert_(o3, "http://evil.example:1234", rp),
                "rp id": a.assert_(o3, origin, "evil.example"),
                "type": a.assert_(o3, origin, rp, type_="webauthn.create"),
                "signature": a.assert_(o3, origin, rp, tamper=True),
                "no UP": a.assert_(o3, origin, rp, up=False),
                "no UV": a.assert_(o3, origin, rp, uv=False),
                "counter": a.assert_(o3, origin, rp, sign_count=1),
                "challenge": a.assert_(o3, origin, rp, challenge=b64url(os.urandom(32))),
            }
            for what, cred in broken.items():
                try:
                    verify_assertion(cred, pub, ch3, origin, rp, stored_count=stored)
                except (ValueError, InvalidSignature):
                    pass
                else:
                    raise AssertionError(f"{alg}: the '{what}' knob did not break the assertion")
            verify_assertion(a.assert_(o3, origin, rp), pub, ch3, origin, rp, stored_count=stored)
            for what, kw in {"x5c": {"fmt": "packed-x5c"}, "tamper": {"fmt": "packed-self", "tamper": True},
                             "no UP": {"up": False}, "origin": {"origin": "http://evil.example:1234"},
                             "rp id": {"rp_id": "evil.example"}, "type": {"type_": "webauthn.get"}}.items():
                args = {"origin": origin, "rp_id": rp, **kw}
                try:
                    verify_registration(SoftAuthn(alg).register(opts, **args), ch, origin, rp)
                except (ValueError, InvalidSignature):
                    pass
                else:
                    raise AssertionError(f"{alg}: the '{what}' knob did not break the registration")
            if verbose:
                print(f"ok {alg} {fmt}")
    # A PKCS#8 round trip (how credentials move to and from Chromium's virtual authenticator).
    k = Key("ES256")
    assert Key.from_pkcs8(k.pkcs8()).cose() == k.cose()
    be = SoftAuthn().register({"challenge": "AAAA", "rp": {"id": rp}, "user": {"id": "AQ"}}, origin, rp, be=True)
    ad = parse_auth_data(cbor_decode(unb64url(be["response"]["attestationObject"]))["authData"])
    assert ad["be"] and ad["bs"]
    return True


if __name__ == "__main__":
    selftest(verbose=True)
    print("softauthn self-checks passed")
