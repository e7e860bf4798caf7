"""Merge the NVIDIA runtime into a container engine's config without losing a user's settings.

The users' pain: a whole daemon.json overwritten. These functions take the file's current text and
return the new text (or the same text when nothing is missing), so a role writes only when needed.
"""

from __future__ import annotations

import json
from typing import Any

from llmhost.errors import LlmhostError


def merge_docker_daemon(current: str, runtime_path: str = "nvidia-container-runtime",
                        make_default: bool = False) -> str:
    """daemon.json text -> the same settings plus runtimes.nvidia (and default-runtime when asked)."""
    try:
        config: dict[str, Any] = json.loads(current) if current.strip() else {}
    except ValueError as exc:
        raise LlmhostError(f"/etc/docker/daemon.json is not valid JSON ({exc}): fix it by hand; llmhost will not "
                           "overwrite it") from None
    if not isinstance(config, dict):
        raise LlmhostError("/etc/docker/daemon.json does not hold a JSON object: fix it by hand")
    runtimes = config.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise LlmhostError("/etc/docker/daemon.json 'runtimes' is not an object: fix it by hand")
    wanted = {"path": runtime_path, "args": []}
    changed = runtimes.get("nvidia") != wanted
    runtimes["nvidia"] = wanted
    if make_default and config.get("default-runtime") != "nvidia":
        config["default-runtime"] = "nvidia"
        changed = True
    return json.dumps(config, indent=2, sort_keys=True) + "\n" if changed else current
