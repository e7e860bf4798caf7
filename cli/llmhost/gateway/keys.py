"""API keys for gateway clients: made here, shown once, stored everywhere else as a SHA-256.

A key is 32 random bytes (256 bits) in URL-safe base64 behind a recognisable prefix, so a leaked key
can be found by secret scanners. Keys that strong need no slow hash: nobody can search 2^256 keys, so
the gateway compares SHA-256 digests (as GitHub and others store their tokens).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from llmhost.errors import LlmhostError

PREFIX = "llmh_"
KEY_BYTES = 32
# What the gateway accepts after "Bearer ": printable ASCII without spaces (njs checks the same).
_PRESENTABLE = re.compile(r"^[!-~]{1,512}$")
MIN_KEY_LENGTH = 24


def new_key() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def key_sha256(key: str) -> str:
    if not _PRESENTABLE.match(key):
        raise LlmhostError("the key has spaces, control or non-ASCII characters, or is over 512 characters: "
                           "expected printable ASCII, as clients send it after 'Bearer '")
    if len(key) < MIN_KEY_LENGTH:
        raise LlmhostError(f"the key is {len(key)} characters long: expected at least {MIN_KEY_LENGTH} "
                           "(make one with 'llmhost key new NAME')")
    return hashlib.sha256(key.encode("ascii")).hexdigest()
