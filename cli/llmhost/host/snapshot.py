"""`llmhost snapshot`: record what preflight reads on this host, and write it as a replayable snapshot."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path

from llmhost.checks import preflight
from llmhost.errors import LlmhostError
from llmhost.host.hostio import COMMANDS, SNAPSHOT_SCHEMA, LiveHost

_UUID = re.compile(rb"\b(GPU|MIG)-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_XML_SECRET = re.compile(rb"<(serial|uuid|board_id|board_part_number)>[^<]*</\1>")
_JSON_SECRET = re.compile(rb'"(serial|uuid)": "[^"]*"')
# lspci -vvv "Device Serial Number 48-b0-2d-ff-ff-3a-c2-01"; the kernel log "GPU Board Serial Number: 1321..."
_TEXT_SERIAL = re.compile(rb"(Serial Number:?[ \t]*)[0-9A-Za-z][0-9A-Za-z:-]{3,}")


def redact(data: bytes) -> bytes:
    """Drop serial numbers and UUIDs (GPU and MIG) wherever they appear."""
    data = _XML_SECRET.sub(lambda m: b"<" + m.group(1) + b"></" + m.group(1) + b">", data)
    data = _JSON_SECRET.sub(lambda m: b'"' + m.group(1) + b'": null', data)
    data = _TEXT_SERIAL.sub(lambda m: m.group(1) + b"REDACTED", data)
    return _UUID.sub(lambda m: m.group(1) + b"-REDACTED", data)


def check_target(path: str) -> Path:
    """Refuse, before anything is captured, a path that exists (nothing is overwritten) or cannot be written."""
    target = Path(path)
    archive = target.name.endswith((".tar.gz", ".tgz"))
    if target.exists() and (archive or not target.is_dir()):
        raise LlmhostError(f"snapshot {path!r} already exists: choose a new path (nothing is overwritten)")
    if target.is_dir() and any(target.iterdir()):
        raise LlmhostError(f"snapshot directory {path!r} is not empty: choose a new path")
    parent = next((p for p in (target.parent, *target.parent.parents) if p.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise LlmhostError(f"snapshot {path!r} cannot be written: {parent} is not a writable directory")
    return target


def capture(model_dir: str | None = None) -> LiveHost:
    """Run every check against this host while recording, and run every documented command."""
    host = LiveHost(record=True, **({"model_dir": model_dir} if model_dir else {}))
    preflight.run(host, source="live", model_dir=model_dir)
    for name in COMMANDS:
        host.run(name)
    return host


def write(host: LiveHost, path: str, redact_ids: bool = False) -> Path:
    """Write a recorded host to PATH: a directory, or a .tar.gz when PATH ends so."""
    target = check_target(path)
    archive = target.name.endswith((".tar.gz", ".tgz"))
    staging = Path(tempfile.mkdtemp(prefix="llmhost-snap-")) if archive else target
    clean = redact if redact_ids else (lambda data: data)
    try:
        staging.mkdir(parents=True, exist_ok=True)
        meta = {"schema": SNAPSHOT_SCHEMA, "hostname": socket.gethostname(),
                "captured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "redacted": redact_ids, "commands": {n: [" ".join(a) for a in alts] for n, alts in COMMANDS.items()},
                "absent": sorted(host.absent)}
        (staging / "snapshot.json").write_text(json.dumps(meta, indent=2) + "\n")
        for file_path, data in host.files.items():
            dest = staging / "root" / file_path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(clean(data))
        # A listed directory replays as a directory with one (empty) entry per name it held.
        for dir_path, entries in host.listings.items():
            if entries is None:
                continue
            folder = staging / "root" / dir_path.lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            for entry in entries:
                if not (folder / entry).exists():
                    (folder / entry).mkdir()
        (staging / "cmd").mkdir(exist_ok=True)
        for name, result in host.commands.items():
            (staging / "cmd" / f"{name}.out").write_bytes(clean(result.out.encode()))
            if result.err:
                (staging / "cmd" / f"{name}.err").write_bytes(clean(result.err.encode()))
            if result.rc:
                (staging / "cmd" / f"{name}.rc").write_text(f"{result.rc}\n")
        if archive:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(target, "w:gz") as tar:
                tar.add(staging, arcname=".")
    except OSError as exc:
        raise LlmhostError(f"snapshot {path!r} could not be written: {exc.strerror or exc}") from None
    finally:
        if archive:
            shutil.rmtree(staging, ignore_errors=True)
    return target
