"""Human sizes and counts on the command line: 24GiB, 24G, 70B (parameters)."""

from __future__ import annotations

import math
import re
from typing import Any

from llmhost.errors import LlmhostError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*$", re.IGNORECASE)
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)


def parse_size(text: str, option: str) -> int:
    """'24GiB', '24G', '24GB' (GB is taken as GiB, as GPU vendors mean it), '512M' -> bytes."""
    match = _SIZE.match(str(text))
    if not match:
        raise LlmhostError(f"{option} {text!r} is not a size: expected a number with K, M, G or T, e.g. 24GiB")
    value, unit = float(match.group(1)), match.group(2).upper()
    size = int(value * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit])
    if size <= 0:
        raise LlmhostError(f"{option} {text!r} is not a size: expected more than 0, e.g. 24GiB")
    return size


def parse_count(text: str, option: str) -> int:
    """'70B', '8.03B', '270M' -> a parameter count."""
    match = _COUNT.match(str(text))
    if not match:
        raise LlmhostError(f"{option} {text!r} is not a parameter count: expected e.g. 7B, 70B, 270M")
    value, unit = float(match.group(1)), match.group(2).upper()
    count = int(value * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[unit])
    if count <= 0:
        raise LlmhostError(f"{option} {text!r} is not a parameter count: expected more than 0, e.g. 7B")
    return count


def finite(value: Any) -> float | None:
    """A reading as a float, None when it is not a finite number (NaN, inf, a bool, a 400-digit int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
