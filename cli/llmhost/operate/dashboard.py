"""The metric names a Grafana dashboard's PromQL queries read (to check them against a live scrape)."""

from __future__ import annotations

import json
import re

# PromQL's functions, aggregations, keywords and the label names the dashboards use: none is a metric.
_NOT_METRICS = {"rate", "irate", "increase", "sum", "max", "min", "avg", "count", "by", "on", "without", "and", "or",
                "unless", "histogram_quantile", "clamp_min", "clamp_max", "offset", "time", "bool", "le", "instance",
                "mode", "ignoring", "group_left", "group_right", "label_values", "up"}


def expr_metrics(expr: str) -> set[str]:
    # Label matchers, ranges and strings hold no metric names.
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    # Label lists of grouping and matching clauses: by (gpu), on (instance), group_left (name).
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    words = re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w(]*\()", bare)
    return {w for w in words if w not in _NOT_METRICS and not re.fullmatch(r"\d.*|e\d+", w)}


def metric_names(dashboard: str) -> set[str]:
    names: set[str] = set()
    for panel in json.loads(dashboard).get("panels", []):
        for target in panel.get("targets", []):
            names |= expr_metrics(target.get("expr", ""))
    return names
