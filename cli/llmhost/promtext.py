"""The Prometheus text exposition format (what node_exporter's textfile collector and a scrape read)."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

Sample = tuple[Mapping[str, object], float]


def label_value(value: object) -> str:
    # A lone surrogate (a hostile GPU name in a snapshot) cannot be encoded: it becomes "?".
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


def family(name: str, help_text: str, kind: str, samples: Iterable[Sample]) -> list[str]:
    """HELP, TYPE and one line per sample; an empty family is left out (a series that does not exist
    is absent, not zero)."""
    lines = []
    for labels, value in samples:
        if value is None:
            continue
        inner = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")
    if not lines:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]
