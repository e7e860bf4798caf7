"""gateway_clients as the role writes them: checked whole, then split into what nginx needs.

A client is {name, key_sha256, rate_limit?, burst?, models?, revoked?}. Nothing is written unless every
entry is right, so a typo in one client never locks out the others or half-applies a change.
"""

from __future__ import annotations

import re
from typing import Any

from llmhost import knowledge
from llmhost.errors import LlmhostError

_KNOWN_KEYS = {"name", "key_sha256", "rate_limit", "burst", "models", "revoked"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _rules() -> dict[str, Any]:
    return knowledge.load("gateway")["clients"]


def normalize(clients: Any) -> list[dict[str, Any]]:
    """Every client with every field, or one error naming the first bad value."""
    if not isinstance(clients, list):
        raise LlmhostError(f"gateway_clients is a {type(clients).__name__}: expected a list of clients")
    rules = _rules()
    seen_names: set[str] = set()
    seen_hashes: set[str] = set()
    out = []
    for index, client in enumerate(clients):
        where = f"gateway_clients[{index}]"
        if not isinstance(client, dict):
            raise LlmhostError(f"{where} is a {type(client).__name__}: expected a mapping with name and key_sha256")
        unknown = sorted(set(client) - _KNOWN_KEYS)
        if unknown:
            raise LlmhostError(f"{where} has unknown field(s) {', '.join(map(str, unknown))}: expected "
                               f"{', '.join(sorted(_KNOWN_KEYS))}")
        name = client.get("name")
        if not isinstance(name, str) or not re.match(rules["name_pattern"], name):
            raise LlmhostError(f"{where}.name {name!r}: expected letters, digits, '.', '_' or '-' "
                               "(1-64, starting with a letter or digit)")
        where = f"gateway client {name}"
        digest = client.get("key_sha256")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise LlmhostError(f"{where}: key_sha256 {digest!r}: expected 64 lowercase hex digits "
                               "('llmhost key new NAME' prints it; never the key itself)")
        if name in seen_names:
            raise LlmhostError(f"{where}: the name is given twice: expected one entry per client")
        if digest in seen_hashes:
            raise LlmhostError(f"{where}: key_sha256 is another client's too: expected one key per client")
        seen_names.add(name)
        seen_hashes.add(digest)
        rate = client.get("rate_limit") or ""
        if rate and (not isinstance(rate, str) or not re.match(rules["rate_pattern"], rate)):
            raise LlmhostError(f"{where}: rate_limit {rate!r}: expected requests per second or minute, "
                               "such as 10r/s or 60r/m")
        burst = client.get("burst", 0)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise LlmhostError(f"{where}: burst {burst!r}: expected a whole number >= 0 (requests allowed "
                               "above the rate at once)")
        if burst and not rate:
            raise LlmhostError(f"{where}: burst {burst} without a rate_limit: expected both or neither")
        models = client.get("models") or []
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise LlmhostError(f"{where}: models {models!r}: expected a list of model names (empty: any)")
        revoked = client.get("revoked", False)
        if not isinstance(revoked, bool):
            raise LlmhostError(f"{where}: revoked {revoked!r}: expected true or false")
        out.append({"name": name, "key_sha256": digest, "rate_limit": rate, "burst": burst,
                    "models": list(models), "revoked": revoked})
    return out


def registry(clients: Any) -> dict[str, Any]:
    """What the gateway reads: clients.json (by key digest) and the rate-limited clients for nginx."""
    normalized = normalize(clients)
    active = [c for c in normalized if not c["revoked"]]
    return {
        "clients_json": {
            "clients": {c["key_sha256"]: {"name": c["name"], "models": c["models"]} for c in active},
            "revoked": {c["key_sha256"]: c["name"] for c in normalized if c["revoked"]},
        },
        "rate_limited": [{"name": c["name"], "rate_limit": c["rate_limit"], "burst": c["burst"]}
                         for c in active if c["rate_limit"]],
        "names": [c["name"] for c in active],
    }
