"""Recorded GPU temperature logs, replayed through the thermal guard's controller.

Two formats people record with:
- `nvidia-smi --query-gpu=timestamp,pci.bus_id,temperature.gpu,power.limit,... --format=csv[,nounits]`
  (a header naming the fields; units either in the header or after each value);
- `nvidia-smi dmon` (`# gpu pwr gtemp ...` header, one row per GPU per second; `-o DT` adds date and time).
The recorded temperatures do not react to the guard's decisions (the log is open loop); the replay
still shows when it would step in, by how much, and that it never goes below the card's minimum.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from llmhost.errors import LlmhostError
from llmhost.units import finite
from llmhost.operate.thermal_guard import Guard, Reading, Settings

# About two days of one GPU's 1 s samples, or six hours of eight: what a replay needs, bounded in memory.
MAX_BYTES = 16 << 20
_NUMBER = re.compile(r"^\s*\[?(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Sample:
    t: float            # seconds since the trace's first sample
    gpu: str
    temperature_c: float
    limit_w: float | None = None
    min_w: float | None = None
    max_w: float | None = None


def parse_limits(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        low, limit, high = (float(p) for p in parts)
    except ValueError:
        raise LlmhostError(f"--trace-limits {text!r}: expected MIN,LIMIT,MAX in watts, e.g. 100,300,300") from None
    if not all(math.isfinite(v) for v in (low, limit, high)) or not 0 < low <= limit <= high:
        raise LlmhostError(f"--trace-limits {text!r}: expected 0 < MIN <= LIMIT <= MAX")
    return low, limit, high


def _number(value: str) -> float | None:
    match = _NUMBER.match(value or "")
    return finite(float(match.group(1))) if match else None


def _timestamp(value: str) -> float | None:
    value = value.strip()
    for fmt in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S",
                "%Y%m%d %H:%M:%S", "%a %b %d %H:%M:%S %Y"):
        try:
            return datetime.strptime(value, fmt).timestamp()
        except ValueError:
            continue
    return None


def _csv(lines: list[str]) -> list[Sample]:
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()).lower() for h in lines[0].split(",")]
    col = {name: i for i, name in enumerate(header)}
    if "temperature.gpu" not in col:
        raise LlmhostError(f"trace header {lines[0].strip()[:120]!r} has no temperature.gpu column")
    gpu_col = next((col[c] for c in ("pci.bus_id", "index", "uuid", "name") if c in col), None)
    samples, first, seen = [], None, {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(header) or cells == header:
            continue
        temp = _number(cells[col["temperature.gpu"]])
        if temp is None:
            continue
        gpu = cells[gpu_col] if gpu_col is not None else "0"
        if "timestamp" in col:
            stamp = _timestamp(cells[col["timestamp"]])
            if stamp is None:
                continue  # a row whose clock cannot be read cannot be placed in time
        else:
            seen[gpu] = seen.get(gpu, -1) + 1
            stamp = float(seen[gpu])  # no clock in the log: one sample a second (nvidia-smi -l 1)
        first = stamp if first is None else first

        def field(name):
            return _number(cells[col[name]]) if name in col else None

        samples.append(Sample(stamp - first, gpu, temp, field("power.limit"), field("power.min_limit"),
                              field("power.max_limit")))
    return samples


def _dmon(lines: list[str]) -> list[Sample]:
    header = lines[0].lstrip("#").split()
    col = {name.lower(): i for i, name in enumerate(header)}
    if "gtemp" not in col or "gpu" not in col:
        raise LlmhostError(f"dmon header {lines[0].strip()[:120]!r} has no gpu and gtemp columns")
    samples, seen = [], {}
    for line in lines[1:]:
        if line.lstrip().startswith("#"):
            continue
        cells = line.split()
        if len(cells) != len(header):
            continue
        temp = _number(cells[col["gtemp"]])
        if temp is None:
            continue
        gpu = cells[col["gpu"]]
        seen[gpu] = seen.get(gpu, -1) + 1
        samples.append(Sample(float(seen[gpu]), gpu, temp))  # dmon's default period: 1 s
    return samples


def load(path: str, limits: tuple[float, float, float] | None = None) -> list[Sample]:
    try:
        if not os.path.isfile(path):
            raise LlmhostError(f"--trace {path}: not a regular file, expected a recorded temperature log")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LlmhostError(f"--trace {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise LlmhostError(f"--trace {path}: larger than {MAX_BYTES >> 20} MiB, expected a temperature log")
    lines = [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        raise LlmhostError(f"--trace {path}: empty, expected nvidia-smi --query-gpu CSV or dmon output")
    first = lines[0].strip()
    if first.startswith("#") and "gtemp" in first.lower():
        samples = _dmon(lines)
    elif "temperature.gpu" in first.lower():
        samples = _csv(lines)
    else:
        raise LlmhostError(f"--trace {path}: first line {first[:80]!r} is neither an nvidia-smi --query-gpu CSV "
                           "header (with temperature.gpu) nor a dmon header (# gpu ... gtemp)")
    if not samples:
        raise LlmhostError(f"--trace {path}: no temperature readings in it")
    if limits:
        low, limit, high = limits
        samples = [Sample(s.t, s.gpu, s.temperature_c, s.limit_w or limit, s.min_w or low, s.max_w or high)
                   for s in samples]
    missing = next((s for s in samples if None in (s.limit_w, s.min_w, s.max_w)), None)
    if missing:
        raise LlmhostError(f"--trace {path}: GPU {missing.gpu} has no power.limit/min_limit/max_limit columns; "
                           "give --trace-limits MIN,LIMIT,MAX")
    return sorted(samples, key=lambda s: s.t)


def replay(settings: Settings, samples: list[Sample]) -> Iterator[str]:
    """One JSON line per decision; the simulated limit follows the guard's own changes."""
    guard, limits = Guard(settings), {}
    for sample in samples:
        limit = limits.setdefault(sample.gpu, sample.limit_w)
        action = guard.observe(Reading(sample.gpu, sample.temperature_c, limit, sample.min_w, sample.max_w), sample.t)
        if action:
            if action.kind in ("lower", "raise"):
                limits[sample.gpu] = action.to_w
            yield json.dumps(action.as_record(sample.t), ensure_ascii=False)
