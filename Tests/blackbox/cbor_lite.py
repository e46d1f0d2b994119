"""CBOR (RFC 8949), the subset CTAP2 uses, for the passkey tests: definite lengths only, dict keys
in CTAP2 canonical order (shorter encoded keys first), no dependency at all.

    cbor_encode(obj) -> bytes            # int, bytes, str, list/tuple, dict, bool, None, float, Tag, Raw
    cbor_decode(data) -> obj             # exactly one item; ValueError on anything malformed or left over
    cbor_decode_prefix(data, pos) -> (obj, position after it)

`Raw` inserts bytes verbatim into an encoding (hand-made, possibly broken CBOR for the fuzz tests).
`selftest()` checks the test vectors of RFC 8949 appendix A (softauthn.selftest runs it).
"""
import struct
from dataclasses import dataclass


class Raw(bytes):
    """Bytes inserted verbatim into an encoding (for hand-made, possibly broken, CBOR)."""


@dataclass(frozen=True)
class Tag:
    tag: int
    value: object


def _head(major: int, n: int) -> bytes:
    if n < 0:
        raise ValueError("negative length")
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes([major << 5 | 26]) + n.to_bytes(4, "big")
    if n < 0x10000000000000000:
        return bytes([major << 5 | 27]) + n.to_bytes(8, "big")
    raise ValueError("integer too large for CBOR")


def cbor_encode(obj) -> bytes:
    if isinstance(obj, Raw):
        return bytes(obj)
    if obj is False:
        return b"\xf4"
    if obj is True:
        return b"\xf5"
    if obj is None:
        return b"\xf6"
    if isinstance(obj, int):
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        return _head(2, len(b)) + b
    if isinstance(obj, str):
        b = obj.encode()
        return _head(3, len(b)) + b
    if isinstance(obj, (list, tuple)):
        return _head(4, len(obj)) + b"".join(cbor_encode(x) for x in obj)
    if isinstance(obj, dict):
        items = sorted(((cbor_encode(k), cbor_encode(v)) for k, v in obj.items()), key=lambda kv: (len(kv[0]), kv[0]))
        return _head(5, len(items)) + b"".join(k + v for k, v in items)
    if isinstance(obj, Tag):
        return _head(6, obj.tag) + cbor_encode(obj.value)
    if isinstance(obj, float):
        return b"\xfb" + struct.pack(">d", obj)
    raise TypeError(f"cannot CBOR-encode {type(obj).__name__}")


def cbor_decode_prefix(data: bytes, pos: int = 0, depth: int = 0):
    """Decodes one item at `pos`: (value, position after it). ValueError on anything malformed."""
    if depth > 64:
        raise ValueError("CBOR nested too deeply")
    if pos >= len(data):
        raise ValueError("CBOR truncated")
    ib = data[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if major == 7:
        if info == 20:
            return False, pos
        if info == 21:
            return True, pos
        if info in (22, 23):
            return None, pos
        size = {25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise ValueError(f"unsupported CBOR simple value {info}")
        if pos + size > len(data):
            raise ValueError("CBOR truncated")
        raw = data[pos:pos + size]
        return struct.unpack({2: ">e", 4: ">f", 8: ">d"}[size], raw)[0], pos + size
    if info < 24:
        n = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise ValueError("CBOR truncated")
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    else:
        raise ValueError("indefinite or reserved CBOR length")
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major in (2, 3):
        if pos + n > len(data):
            raise ValueError("CBOR string runs past the end")
        raw = bytes(data[pos:pos + n])
        return (raw if major == 2 else raw.decode()), pos + n
    if major == 4:
        if n > len(data) - pos:
            raise ValueError("CBOR array longer than the input")
        out = []
        for _ in range(n):
            v, pos = cbor_decode_prefix(data, pos, depth + 1)
            out.append(v)
        return out, pos
    if major == 5:
        if n > len(data) - pos:
            raise ValueError("CBOR map longer than the input")
        out = {}
        for _ in range(n):
            k, pos = cbor_decode_prefix(data, pos, depth + 1)
            v, pos = cbor_decode_prefix(data, pos, depth + 1)
            if isinstance(k, list):
                k = tuple(k)
            out[k] = v
        return out, pos
    if major == 6:
        v, pos = cbor_decode_prefix(data, pos, depth + 1)
        return Tag(n, v), pos
    raise ValueError("unreachable")


def cbor_decode(data: bytes):
    value, pos = cbor_decode_prefix(bytes(data))
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the CBOR item")
    return value


# Appendix A of RFC 8949: (value, its encoding in hex).
RFC8949_VECTORS = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"), (1000, "1903e8"),
    (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"), (18446744073709551615, "1bffffffffffffffff"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"), (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"), ("", "60"), ("a", "6161"), ("IETF", "6449455446"),
    ("\"\\", "62225c"), ("\u00fc", "62c3bc"), ("\u6c34", "63e6b0b4"), ([], "80"), ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"), (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
]


def selftest():
    """RFC 8949 appendix A vectors both ways, floats and tags, CTAP2 key order, and broken inputs refused."""
    for value, hexed in RFC8949_VECTORS:
        enc = cbor_encode(value)
        assert enc.hex() == hexed, (value, enc.hex(), hexed)
        assert cbor_decode(enc) == value, (value, cbor_decode(enc))
    assert cbor_decode(bytes.fromhex("f93c00")) == 1.0 and cbor_decode(bytes.fromhex("fb3ff199999999999a")) == 1.1
    assert cbor_decode(bytes.fromhex("c074323031332d30332d32315432303a30343a30305a")) == Tag(0, "2013-03-21T20:04:00Z")
    # CTAP2 canonical order: shorter encoded keys first (3 < -1 < -2 < -3 for a COSE EC2 key).
    assert cbor_encode({-3: 0, -2: 0, -1: 0, 3: 0, 1: 0}).hex() == "a5010003002000210022" + "00"
    for broken in ["5bffffffffffffffff", "81" * 500, "a1", "9f", "44010203", "1c", "ff", "7f", ""]:
        try:
            cbor_decode(bytes.fromhex(broken))
        except ValueError:
            pass
        else:
            raise AssertionError(f"decoded broken CBOR {broken}")
    return True


if __name__ == "__main__":
    selftest()
    print("cbor_lite self-checks passed")
