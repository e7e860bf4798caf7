"""Write a file whole or not at all: a reader (node_exporter's textfile collector, the next run)
sees the old content or the new, never half of it, and a failed write leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmhost.errors import LlmhostError


def write_text(path: str | os.PathLike, text: str, what: str = "output") -> None:
    target = Path(path)
    if not target.name or target.name in (".", ".."):
        raise LlmhostError(f"{what} {str(path)!r}: expected a file name, not a directory")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise LlmhostError(f"{what} {str(path)!r} exists and is not a regular file: expected a file path")
    try:
        # A fresh name that no one can have planted (mkstemp opens with O_EXCL, never follows a link).
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise LlmhostError(f"{what} {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise LlmhostError(f"{what} {str(path)!r}: {exc.strerror or exc}") from None
