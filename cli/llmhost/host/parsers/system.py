"""procfs, sysfs and small command outputs: meminfo, cpuinfo, modules, limits, kernel log, mokutil,
dkms, df, mountinfo, cpulists."""

from __future__ import annotations

import re
from typing import Any

from llmhost.host.parsers import ParseError, is_number


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {key: value in KiB (or a bare count for HugePages_*)}."""
    values = {}
    for line in (text or "").splitlines():
        match = re.match(r"^([\w()]+):\s+(\d+)(?:\s+kB)?\s*$", line)
        if match:
            values[match.group(1)] = int(match.group(2))
    if "MemTotal" not in values:
        raise ParseError("/proc/meminfo has no MemTotal line")
    return values


def cpu_flags(text: str) -> set[str]:
    """/proc/cpuinfo -> the flags of the first processor (x86 'flags', Arm 'Features')."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    raise ParseError("/proc/cpuinfo has no flags line")


def threads_per_core(text: str) -> int:
    """/proc/cpuinfo -> hardware threads per core (siblings / cpu cores of the first CPU; 1 if unsaid)."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("siblings", "cpu cores") and key.strip() not in fields and value.strip().isdecimal():
            fields[key.strip()] = int(value.strip())
        if len(fields) == 2:
            break
    if fields.get("siblings") and fields.get("cpu cores"):
        return max(1, fields["siblings"] // fields["cpu cores"])
    return 1


def loaded_modules(text: str) -> set[str]:
    """/proc/modules -> module names."""
    return {line.split()[0] for line in (text or "").splitlines() if line.strip()}


def limit(text: str, name: str) -> tuple[int | None, int | None]:
    """/proc/<pid>/limits -> (soft, hard) for e.g. 'Max locked memory'; None means unlimited."""
    for line in (text or "").splitlines():
        if line.startswith(name):
            parts = line[len(name):].split()
            if len(parts) < 2:
                break
            return tuple(None if p == "unlimited" else int(p) for p in parts[:2])  # type: ignore[return-value]
    raise ParseError(f"limits have no {name!r} line")


def selected(text: str) -> str:
    """'always [madvise] never' -> 'madvise'."""
    match = re.search(r"\[(\w+)\]", text or "")
    if not match:
        raise ParseError(f"no [selected] value in {text.strip()[:60]!r}")
    return match.group(1)


def cpulist(text: str) -> list[int]:
    """'0-3,8-11' -> [0, 1, 2, 3, 8, 9, 10, 11]."""
    cpus: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if not is_number(low) or (high and not is_number(high)):
            raise ParseError(f"cpu list {text.strip()!r} is not like '0-3,8-11'")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


_XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)")


def xids(kernel_log: str) -> list[dict[str, Any]]:
    """Kernel log -> [{'address', 'xid', 'line'}] for every 'NVRM: Xid (PCI:...): N' message."""
    found = []
    for line in (kernel_log or "").splitlines():
        match = _XID.search(line)
        if match:
            found.append({"address": match.group(1).lower(), "xid": int(match.group(2)), "line": line.strip()[:200]})
    return found


def secure_boot(mokutil_out: str) -> bool:
    """`mokutil --sb-state` -> True when 'SecureBoot enabled'."""
    text = (mokutil_out or "").lower()
    if "secureboot enabled" in text:
        return True
    if "secureboot disabled" in text or "efi variables are not supported" in text:
        return False
    raise ParseError(f"mokutil said {mokutil_out.strip()[:80]!r}, expected 'SecureBoot enabled|disabled'")


def secure_boot_efivar(raw: bytes) -> bool:
    """efivars SecureBoot-8be4df61-...: 4 attribute bytes then one value byte."""
    if len(raw) < 5:
        raise ParseError(f"SecureBoot efivar has {len(raw)} bytes, expected 5")
    return raw[4] == 1


def dkms_status(text: str) -> list[dict[str, str]]:
    """`dkms status` (old 'nvidia, 535, 6.1.0, x86_64: installed' and new 'nvidia/535, 6.1.0, ...')."""
    entries = []
    for line in (text or "").splitlines():
        head, _, state = line.rpartition(":")
        parts = [p.strip() for p in head.replace("/", ", ", 1).split(",")]
        if len(parts) >= 3 and state.strip():
            entries.append({"module": parts[0], "version": parts[1], "kernel": parts[2],
                            "state": state.strip().split()[0]})
    return entries


def df_table(text: str) -> list[dict[str, Any]]:
    """`df -PB1 [PATH]` -> [{'device', 'size', 'available', 'mount'}] (a mount point may hold spaces)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        raise ParseError("df printed no filesystem line")
    rows = []
    for line in lines[1:]:
        parts = line.split(None, 5)
        if len(parts) < 6 or not is_number(parts[1]) or not is_number(parts[3]):
            raise ParseError(f"df line {line[:80]!r} is not 'device size used available use% mount'")
        rows.append({"device": parts[0], "size": int(parts[1]), "available": int(parts[3]), "mount": parts[5]})
    return rows


def df_bytes(text: str) -> dict[str, Any]:
    """`df -PB1 PATH` -> {'device', 'size', 'available', 'mount'} of the filesystem holding PATH."""
    return df_table(text)[-1]


def mount_options(text: str) -> dict[str, set[str]]:
    """/proc/mounts -> {mount point: {options}}; octal escapes (\\040 for a space) decoded."""
    mounts = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
            mounts[point] = set(parts[3].split(","))
    return mounts


def apt_periodic(text: str) -> dict[str, str]:
    """apt.conf fragments -> {'APT::Periodic::Unattended-Upgrade': '1', ...}."""
    return dict(re.findall(r'(APT::Periodic::[\w-]+)\s+"([^"]*)"\s*;', text or ""))
