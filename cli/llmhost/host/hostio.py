"""Where preflight reads a host from: the live machine, or a snapshot of one.

Checks never touch the filesystem or run programs themselves; they ask a Host. A LiveHost can
record everything it was asked for, and that record *is* the snapshot: replaying it asks the same
questions and gets the same answers, so a snapshot replays to the same results as the live run.

Snapshot layout (schema llmhost.snapshot/1), a directory or a .tar.gz of one:
  snapshot.json                       {"schema", "hostname", "captured_at", "absent": [paths asked
                                      for and not found]} (optional on replay; without "absent", a
                                      path is known only where the snapshot holds its tree)
  root/<absolute path>                copies of the files read
  cmd/<name>.out|.err|.rc             output of the fixed command set below (absent .rc means 0)
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from llmhost.errors import LlmhostError

SNAPSHOT_SCHEMA = "llmhost.snapshot/1"
# rc used when a command's program is not installed (as a shell reports it).
NOT_INSTALLED = 127

# The documented, fixed command set. Each name lists alternatives; the first whose program exists runs.
COMMANDS: dict[str, list[list[str]]] = {
    "nvidia-smi-q-x": [["nvidia-smi", "-q", "-x"]],
    "nvidia-smi-topo-m": [["nvidia-smi", "topo", "-m"]],
    "lspci-vvv": [["lspci", "-vvv", "-D"]],
    "uname-r": [["uname", "-r"]],
    "mokutil-sb-state": [["mokutil", "--sb-state"]],
    "dkms-status": [["dkms", "status"]],
    "kernel-log": [["journalctl", "-k", "-b", "--no-pager", "-q"], ["dmesg"]],
    "nvcc-version": [["nvcc", "--version"], ["/usr/local/cuda/bin/nvcc", "--version"]],
    # The driver the packages installed: what runs after a pending reboot, not always what is loaded.
    # (Braces are doubled: every argument is formatted with the model directory.)
    "driver-packages": [["dpkg-query", "-W", "-f", "${{db:Status-Abbrev}} ${{Version}} ${{Package}}\n", "nvidia-smi",
                         "nvidia-utils-*", "nvidia-driver"],
                        ["rpm", "-q", "--qf", "%{{VERSION}} %{{NAME}}\n", "nvidia-driver", "nvidia-driver-cuda"]],
    "nvidia-ctk-version": [["nvidia-ctk", "--version"]],
    "persistenced-active": [["systemctl", "is-active", "nvidia-persistenced"]],
    "fabricmanager-active": [["systemctl", "is-active", "nvidia-fabricmanager"]],
    "df-model-dir": [["df", "-PB1", "{model_dir}"]],
    "df-local": [["df", "-PB1", "-l"]],
    # Not a program: NVML read through nvidia-ml-py, stored as JSON so it replays like the rest.
    "nvml": [],
}
COMMAND_TIMEOUT_S = 10


@dataclass(frozen=True)
class CommandResult:
    rc: int
    out: str
    err: str

    @property
    def not_installed(self) -> bool:
        return self.rc == NOT_INSTALLED


class Host:
    """The questions a check may ask. None always means 'not available on that host'."""

    def read(self, path: str) -> str | None:
        raw = self.read_bytes(path)
        return raw.decode("utf-8", errors="replace") if raw is not None else None

    def read_bytes(self, path: str) -> bytes | None:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str] | None:
        raise NotImplementedError

    def run(self, name: str) -> CommandResult | None:
        raise NotImplementedError

    def knows(self, path: str) -> bool:
        """Whether this host can say anything about path: None from read/listdir then means 'absent',
        not 'unknown'. A live machine always can."""
        return True


class LiveHost(Host):
    """This machine. With record=True it keeps a copy of every answer, to be saved as a snapshot."""

    def __init__(self, record: bool = False, model_dir: str = "/var/lib/llmhost/models",
                 nvml_reader=None):
        self.recording = record
        self.model_dir = model_dir
        self.files: dict[str, bytes] = {}
        self.commands: dict[str, CommandResult] = {}
        self._nvml_reader = nvml_reader
        self.listings: dict[str, list[str] | None] = {}
        self.absent: set[str] = set()  # paths asked for that this machine does not have

    def read_bytes(self, path: str) -> bytes | None:
        try:
            data = _read_capped(path)
        except (OSError, ValueError):
            if self.recording:
                self.absent.add(path)
            return None
        if self.recording:
            self.files[path] = data
        return data

    def listdir(self, path: str) -> list[str] | None:
        if path not in self.listings:
            try:
                self.listings[path] = sorted(os.listdir(path))
            except OSError:
                self.listings[path] = None
                if self.recording:
                    self.absent.add(path)
        return self.listings[path]

    def run(self, name: str) -> CommandResult | None:
        if name in self.commands:
            return self.commands[name]
        if name == "nvml":
            result = self._run_nvml()
        else:
            result = self._run_program(name)
        self.commands[name] = result
        return result

    def _run_nvml(self) -> CommandResult:
        from llmhost.host import nvml  # imported lazily: pynvml loads libnvidia-ml only when asked

        reader = self._nvml_reader or nvml.read
        facts, error = reader()
        if facts is None:
            return CommandResult(1, "", error or "NVML unavailable")
        return CommandResult(0, json.dumps(facts, sort_keys=True), "")

    def _run_program(self, name: str) -> CommandResult:
        for argv in COMMANDS[name]:
            argv = [a.format(model_dir=_existing_parent(self.model_dir)) for a in argv]
            if shutil.which(argv[0]) is None:
                continue
            try:
                proc = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False,
                                      env={**os.environ, "LC_ALL": "C"})
            except subprocess.TimeoutExpired:
                return CommandResult(124, "", f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S} s")
            except OSError as exc:
                return CommandResult(126, "", f"{argv[0]}: {exc}")
            return CommandResult(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                 proc.stderr.decode("utf-8", "replace"))
        return CommandResult(NOT_INSTALLED, "", f"{COMMANDS[name][0][0]}: command not found")


READ_CAP = 4 << 20
# A snapshot archive is a few MiB; these bound a hostile one before anything is written.
ARCHIVE_MAX_BYTES = 256 << 20
ARCHIVE_MAX_MEMBERS = 100_000


def _read_capped(path: str | Path, chunk: int = 64 << 10, cap: int = READ_CAP) -> bytes:
    # procfs sysctl files fail a single large read() with ENOMEM (the kernel allocates the
    # requested size), so read in small chunks up to a cap.
    parts, size = [], 0
    with open(path, "rb", buffering=0) as handle:
        while size < cap:
            part = handle.read(chunk)
            if not part:
                break
            parts.append(part)
            size += len(part)
    return b"".join(parts)


def _existing_parent(path: str) -> str:
    """The nearest directory of path this user can see (a 0750 directory above it reads as absent)."""
    current = Path(path)
    while current != current.parent:
        try:
            current.stat()
            return str(current)
        except OSError:
            current = current.parent
    return str(current)


class SnapshotHost(Host):
    """A snapshot directory (unpacked already). Missing files and commands read as not available."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.meta: dict = {}
        meta = directory / "snapshot.json"
        if meta.exists() or meta.is_symlink():
            raw = _regular_file(meta)
            try:
                self.meta = json.loads(raw) if raw is not None else None
            except (ValueError, UnicodeDecodeError):
                raise LlmhostError(f"snapshot {directory}: snapshot.json is not valid JSON") from None
            if not isinstance(self.meta, dict):
                raise LlmhostError(f"snapshot {directory}: snapshot.json is not a JSON object (got "
                                   f"{type(self.meta).__name__}): expected {{\"schema\": \"{SNAPSHOT_SCHEMA}\", ...}}")
            if self.meta.get("schema", SNAPSHOT_SCHEMA) != SNAPSHOT_SCHEMA:
                raise LlmhostError(f"snapshot {directory}: schema {self.meta.get('schema')!r} is not {SNAPSHOT_SCHEMA}")
        if not (directory / "root").is_dir() and not (directory / "cmd").is_dir():
            raise LlmhostError(f"snapshot {directory}: has neither root/ nor cmd/; expected an llmhost snapshot")

    def knows(self, path: str) -> bool:
        """A snapshot speaks only for what it recorded. `llmhost snapshot` lists the paths it asked for
        and did not find (snapshot.json 'absent'); for a snapshot without that list (hand-made, or
        older), a path is known when the snapshot holds its tree (root/sys/firmware for /sys/firmware/efi).
        A pasted lspci or nvidia-smi output alone says nothing about files: their absence is unknown."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            return False
        try:
            if (self.directory / "root" / "/".join(parts)).exists():
                return True
        except OSError:
            return False
        absent = self.meta.get("absent")
        if isinstance(absent, list):
            return any(path == a or path.startswith(str(a).rstrip("/") + "/") for a in absent if isinstance(a, str))
        return (self.directory / "root" / "/".join(parts[:2])).is_dir()

    def _path(self, path: str) -> Path:
        root = (self.directory / "root").resolve()
        try:
            target = (self.directory / "root" / path.lstrip("/")).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise LlmhostError(f"snapshot path {path!r} does not resolve") from None
        if target != root and root not in target.parents:
            raise LlmhostError(f"snapshot path {path!r} escapes the snapshot")
        return target

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return _regular_file(self._path(path))
        except LlmhostError:
            return None

    def listdir(self, path: str) -> list[str] | None:
        try:
            return sorted(os.listdir(self._path(path)))
        except (OSError, LlmhostError):
            return None

    def run(self, name: str) -> CommandResult | None:
        base = self.directory / "cmd" / name
        out, err, rc = (_regular_file(base.with_name(name + ext)) for ext in (".out", ".err", ".rc"))
        if out is None and err is None and rc is None:
            return None
        try:
            code = int(rc.decode("ascii").strip()) if rc is not None else 0
        except (ValueError, UnicodeDecodeError):
            code = 1
        text = lambda raw: raw.decode("utf-8", "replace") if raw is not None else ""  # noqa: E731
        return CommandResult(code, text(out), text(err))


def _regular_file(path: Path) -> bytes | None:
    """A snapshot's file, read as live files are (capped), or None when it is not a regular file:
    a directory, a FIFO (which would block), a device, a dangling link or a link loop."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return _read_capped(path)
    except (OSError, RuntimeError, ValueError):
        return None


def open_snapshot(path: str) -> tuple[SnapshotHost, tempfile.TemporaryDirectory | None]:
    """A snapshot directory or .tar.gz -> a SnapshotHost (and the temp dir to clean up, if any)."""
    source = Path(path)
    try:
        source.stat()
    except PermissionError:
        raise LlmhostError(f"snapshot {path!r} cannot be read by this user (permission denied)") from None
    except OSError:
        pass  # absent: said below
    if source.is_dir():
        if not os.access(source, os.R_OK | os.X_OK):
            raise LlmhostError(f"snapshot {path!r} cannot be read by this user (permission denied)")
        return SnapshotHost(source), None
    if not source.exists():
        raise LlmhostError(f"snapshot {path!r} does not exist: expected a directory or a .tar.gz made by 'llmhost snapshot'")
    if not source.is_file():
        raise LlmhostError(f"snapshot {path!r} is not a regular file: expected a directory or a .tar.gz")
    tmp = tempfile.TemporaryDirectory(prefix="llmhost-snapshot-")
    try:
        with tarfile.open(source, "r:*") as archive:
            members, total = [], 0
            for member in archive:  # the headers are read one by one, bounded, before anything is written
                members.append(member)
                total += max(0, member.size)
                if len(members) > ARCHIVE_MAX_MEMBERS or total > ARCHIVE_MAX_BYTES:
                    raise LlmhostError(f"snapshot {path!r} unpacks to more than {ARCHIVE_MAX_MEMBERS} entries or "
                                       f"{ARCHIVE_MAX_BYTES >> 20} MiB: not an llmhost snapshot")
            archive.extractall(tmp.name, members=[m for m in members if m.isfile() or m.isdir() or m.issym()],
                               filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        tmp.cleanup()
        raise LlmhostError(f"snapshot {path!r} is not a readable .tar.gz: {exc}") from None
    except LlmhostError:
        tmp.cleanup()
        raise
    root = Path(tmp.name)
    entries = [p for p in root.iterdir()]
    # A tarball of a directory ('tar czf s.tgz snap/') holds one top folder.
    if len(entries) == 1 and entries[0].is_dir() and not (root / "root").exists():
        root = entries[0]
    try:
        return SnapshotHost(root), tmp
    except LlmhostError:
        tmp.cleanup()
        raise
