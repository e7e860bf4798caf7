"""What preflight needs of the gateway's certificate, from its PEM text alone: expiry and fingerprint.

A bounded DER walk to the validity field (RFC 5280 4.1): the engine runs on hosts with no Python crypto
library, and it must judge a snapshot's copy of the file the same way as the live one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re

from llmhost.errors import LlmhostError

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]{16,65536}?)-----END CERTIFICATE-----")
_SEQUENCE, _INTEGER, _EXPLICIT_0, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0x02, 0xA0, 0x17, 0x18


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at pos."""
    if pos + 2 > len(der):
        raise ValueError("truncated")
    tag, length, pos = der[pos], der[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > len(der):
            raise ValueError("bad length")
        length, pos = int.from_bytes(der[pos:pos + count], "big"), pos + count
    if pos + length > len(der):
        raise ValueError("truncated")
    return tag, pos, pos + length


def _time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; RFC 5280: years 50-99 are 19xx
        parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == _GENERALIZED_TIME:
        parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return parsed.replace(tzinfo=dt.timezone.utc)


def read(pem: bytes, where: str) -> dict:
    """The first certificate of a PEM file: {not_after (aware datetime), fingerprint_sha256 (AA:BB:..)}."""
    match = _PEM.search(pem[: 1 << 20])
    if not match:
        raise LlmhostError(f"{where}: no PEM certificate in it: expected '-----BEGIN CERTIFICATE-----'")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
        tag, start, _ = _element(der, 0)
        tag_tbs, pos, _ = _element(der, start)
        if tag != _SEQUENCE or tag_tbs != _SEQUENCE:
            raise ValueError("not a certificate")
        tag, _, after = _element(der, pos)
        if tag == _EXPLICIT_0:  # version
            pos = after
        for expected in (_INTEGER, _SEQUENCE, _SEQUENCE):  # serial, signature algorithm, issuer
            tag, _, pos = _element(der, pos)
            if tag != expected:
                raise ValueError("not a certificate")
        tag, pos, _ = _element(der, pos)  # validity
        if tag != _SEQUENCE:
            raise ValueError("not a certificate")
        _, _, pos = _element(der, pos)  # notBefore
        tag, start, end = _element(der, pos)
        not_after = _time(tag, der[start:end])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise LlmhostError(f"{where}: the certificate cannot be read ({exc}): expected an X.509 certificate") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return {"not_after": not_after, "fingerprint_sha256": ":".join(digest[i:i + 2] for i in range(0, 64, 2))}
