"""An independent relying-party check of WebAuthn credentials, for softauthn's self-checks and to
read what Chromium's virtual authenticator produced. It shares nothing with the authenticator in
softauthn.py but the CBOR decoder (cbor_lite.py): what it verifies was not made by its own code.

    verify_registration(cred, challenge, origin, rp_id) -> parsed authenticatorData ("none" or packed self)
    verify_assertion(cred, public_key, challenge, origin, rp_id, stored_count) -> parsed authenticatorData
    parse_auth_data(raw) -> {"rp_id_hash", "flags", "up", "uv", "be", "bs", "sign_count", ...}
    cose_verify(cose_key, data, signature)

Each raises ValueError (or cryptography's InvalidSignature) on what an RP must refuse.
"""
import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from cbor_lite import cbor_decode, cbor_decode_prefix


# ---------------------------------------------------------------------------------------------
# base64url


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    if not isinstance(s, str):
        raise ValueError("base64url value is not a string")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------------------------------------
# authenticatorData and COSE keys

UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def parse_auth_data(ad: bytes) -> dict:
    """{"rp_id_hash", "flags", "up", "uv", "be", "bs", "sign_count", and with AT: "aaguid", "credential_id", "public_key"}"""
    if len(ad) < 37:
        raise ValueError("authenticatorData shorter than 37 bytes")
    out = {"rp_id_hash": ad[:32], "flags": ad[32], "sign_count": int.from_bytes(ad[33:37], "big")}
    f = ad[32]
    out.update(up=bool(f & UP), uv=bool(f & UV), be=bool(f & BE), bs=bool(f & BS), at=bool(f & AT), ed=bool(f & ED))
    pos = 37
    if f & AT:
        out["aaguid"] = ad[pos:pos + 16]
        n = int.from_bytes(ad[pos + 16:pos + 18], "big")
        pos += 18
        out["credential_id"] = ad[pos:pos + n]
        pos += n
        out["public_key"], pos = cbor_decode_prefix(ad, pos)
    if f & ED:
        out["extensions"], pos = cbor_decode_prefix(ad, pos)
    if pos != len(ad):
        raise ValueError("bytes left after authenticatorData")
    return out


def cose_verify(cose: dict, data: bytes, sig: bytes) -> None:
    """Raises InvalidSignature (or ValueError for a key it does not know)."""
    kty, alg = cose.get(1), cose.get(3)
    if kty == 2 and alg == -7 and cose.get(-1) == 1:
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(cose[-2], "big"), int.from_bytes(cose[-3], "big"),
                                            ec.SECP256R1()).public_key()
        pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    elif kty == 1 and alg == -8 and cose.get(-1) == 6:
        ed25519.Ed25519PublicKey.from_public_bytes(cose[-2]).verify(sig, data)
    elif kty == 3 and alg == -257:
        pub = rsa.RSAPublicNumbers(int.from_bytes(cose[-2], "big"), int.from_bytes(cose[-1], "big")).public_key()
        pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise ValueError(f"unsupported COSE key kty={kty} alg={alg}")


# ---------------------------------------------------------------------------------------------
# The relying party's checks


def verify_registration(cred: dict, challenge: str, origin: str, rp_id: str, require_uv=True) -> dict:
    """Checks a registration the way an RP would (none / packed self attestation only). Returns the parsed
    authenticatorData (with "public_key"). Raises ValueError / InvalidSignature."""
    r = cred["response"]
    cdj = unb64url(r["clientDataJSON"])
    cd = json.loads(cdj)
    if cd.get("type") != "webauthn.create" or cd.get("challenge") != challenge or cd.get("origin") != origin:
        raise ValueError(f"clientData mismatch: {cd}")
    att = cbor_decode(unb64url(r["attestationObject"]))
    ad = parse_auth_data(att["authData"])
    if ad["rp_id_hash"] != sha256(rp_id.encode()):
        raise ValueError("rpIdHash")
    if not ad["up"] or (require_uv and not ad["uv"]) or not ad["at"]:
        raise ValueError(f"flags {ad['flags']:#x}")
    if ad["credential_id"] != unb64url(cred["rawId"]) or cred["id"] != cred["rawId"]:
        raise ValueError("credential id")
    if att["fmt"] == "packed":
        if "x5c" in att["attStmt"]:
            raise ValueError("x5c attestation not supported")
        if att["attStmt"].get("alg") != ad["public_key"].get(3) or set(att["attStmt"]) != {"alg", "sig"}:
            raise ValueError(f"packed self attestation statement {sorted(att['attStmt'])}")
        cose_verify(ad["public_key"], att["authData"] + sha256(cdj), att["attStmt"]["sig"])
    elif att["fmt"] != "none":
        raise ValueError(f"attestation format {att['fmt']}")
    return ad


def verify_assertion(cred: dict, public_key: dict, challenge: str, origin: str, rp_id: str, stored_count=0,
                     require_uv=True) -> dict:
    r = cred["response"]
    cdj = unb64url(r["clientDataJSON"])
    cd = json.loads(cdj)
    if cd.get("type") != "webauthn.get" or cd.get("challenge") != challenge or cd.get("origin") != origin:
        raise ValueError(f"clientData mismatch: {cd}")
    raw_ad = unb64url(r["authenticatorData"])
    ad = parse_auth_data(raw_ad)
    if ad["rp_id_hash"] != sha256(rp_id.encode()):
        raise ValueError("rpIdHash")
    if not ad["up"] or (require_uv and not ad["uv"]):
        raise ValueError(f"flags {ad['flags']:#x}")
    if (ad["sign_count"] or stored_count) and ad["sign_count"] <= stored_count:
        raise ValueError(f"counter {ad['sign_count']} <= stored {stored_count}: a clone")
    cose_verify(public_key, raw_ad + sha256(cdj), unb64url(r["signature"]))
    return ad
