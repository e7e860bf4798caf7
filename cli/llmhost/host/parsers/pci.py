"""PCI addresses, sysfs attributes and `lspci -vvv` blocks."""

from __future__ import annotations

import re
from typing import Any

from llmhost.host.parsers import ParseError

_ADDRESS = re.compile(r"^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
# sysfs link speed "16.0 GT/s PCIe" -> generation
_GT_TO_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


def normalize_address(text: str) -> str:
    """'00000000:01:00.0', '0000:01:00.0' or '01:00.0' -> '0000:01:00.0' (lower case)."""
    match = _ADDRESS.match(text.strip())
    if not match:
        raise ParseError(f"PCI address {text!r} is not DOMAIN:BUS:DEVICE.FUNCTION")
    domain, bus, dev, fn = match.groups()
    return f"{int(domain or '0', 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"


def gen_from_speed(text: str | None) -> int | None:
    """'8.0 GT/s PCIe' or '8GT/s' -> 3. Unknown or 'Unknown' -> None."""
    if not text:
        return None
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*GT/s", text)
    return _GT_TO_GEN.get(float(match.group(1))) if match else None


def parse_int(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text.strip(), base) if text is not None else None
    except ValueError:
        return None


def bar_sizes(resource: str | None) -> list[int]:
    """sysfs `resource`: one 'start end flags' line per region -> sizes in bytes (0 when unused)."""
    sizes = []
    for line in (resource or "").splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            start, end = int(parts[0], 16), int(parts[1], 16)
        except ValueError:
            continue
        sizes.append(end - start + 1 if end > start else 0)
    return sizes


_SIZE = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _bytes(text: str) -> int | None:
    match = _SIZE.fullmatch(text.strip())
    return int(match.group(1)) * _UNITS[match.group(2).upper()] if match else None


_NN_IDS = re.compile(r"\[([0-9a-fA-F]{4}:[0-9a-fA-F]{4})\]")


def parse_lspci(text: str) -> dict[str, dict[str, Any]]:
    """`lspci -vvv -D` (or -vv, with or without -nn) -> {address: {name, ids?, subsystem?, link_cap_gt,
    link_cap_width, link_sta_gt, link_sta_width, link_sta_downgraded, regions: {n: bytes},
    rebar: {bar: {current, supported: [...]}}}}. ids and subsystem ('10de:2230') only where -nn printed them."""
    if text is None:
        raise ParseError("lspci output is missing")
    devices: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            head = line.split(" ", 1)
            try:
                address = normalize_address(head[0])
            except ParseError:
                current = None
                continue
            current = devices.setdefault(address, {"name": head[1] if len(head) > 1 else "", "rebar": {}})
            ids = _NN_IDS.findall(current["name"])
            if ids:
                current["ids"] = ids[-1].lower()
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("Subsystem:"):
            ids = _NN_IDS.findall(stripped)
            if ids:
                current["subsystem"] = ids[-1].lower()
        elif stripped.startswith("LnkCap:"):
            speed, width = re.search(r"Speed ([\d.]+)GT/s", stripped), re.search(r"Width x(\d+)", stripped)
            current["link_cap_gt"] = float(speed.group(1)) if speed else None
            current["link_cap_width"] = int(width.group(1)) if width else None
        elif stripped.startswith("LnkSta:"):
            speed, width = re.search(r"Speed ([\d.]+)GT/s", stripped), re.search(r"Width x(\d+)", stripped)
            current["link_sta_gt"] = float(speed.group(1)) if speed else None
            current["link_sta_width"] = int(width.group(1)) if width else None
            current["link_sta_downgraded"] = "downgraded" in stripped
        elif stripped.startswith("Region ") and "[size=" in stripped:
            region = re.match(r"Region (\d+): Memory at .*\[size=(\S+?)\]", stripped)
            if region:
                current.setdefault("regions", {})[int(region.group(1))] = _bytes(region.group(2))
        elif re.match(r"BAR \d+: current size:", stripped):
            bar = re.match(r"BAR (\d+): current size: (\S+), supported: (.*)$", stripped)
            if bar:
                supported = [s for s in (_bytes(t) for t in bar.group(3).split()) if s]
                current["rebar"][int(bar.group(1))] = {"current": _bytes(bar.group(2)), "supported": supported}
        elif stripped.startswith("Capabilities: <access denied>"):
            current["access_denied"] = True
    return devices
