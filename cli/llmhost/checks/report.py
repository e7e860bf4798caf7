"""Render a preflight Report as text for people, JSON, or Prometheus textfile samples."""

from __future__ import annotations

import json
import os
import sys
import time

from llmhost.checks.preflight import Report
from llmhost.promtext import family

_COLOURS = {"pass": "32", "warn": "33", "fail": "31", "skip": "90"}
PROM_VALUE = {"pass": 0, "warn": 1, "fail": 2, "skip": 3}


def use_colour(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def text(report: Report, colour: bool = False) -> str:
    def paint(status: str, word: str) -> str:
        return f"\033[{_COLOURS[status]}m{word}\033[0m" if colour else word

    host = report.host
    lines = [f"llmhost preflight: {host.get('hostname') or '?'} ({host.get('os') or 'unknown OS'}, "
             f"kernel {host.get('kernel') or '?'}, {host.get('source')})", ""]
    width = max((len(r.id) for r in report.results), default=10)
    for result in report.results:
        subject = "" if result.subject == "host" else f"[{result.subject}] "
        lines.append(f"{paint(result.status, result.status.upper().ljust(4))}  {result.id.ljust(width)}  "
                     f"{subject}{result.message}")
        if result.remedy and result.status in ("warn", "fail"):
            lines.append(f"{'':4}  {'':{width}}  -> {result.remedy}")
    summary = report.summary
    lines += ["", " ".join(f"{paint(s, str(n) + ' ' + s)}" for s, n in summary.items())]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n"


def prometheus(report: Report) -> str:
    """node_exporter textfile collector format."""
    host = report.host.get("hostname") or ""
    lines = family("llmhost_preflight_check_status",
                   "Result of one llmhost preflight check (0 pass, 1 warn, 2 fail, 3 skip).", "gauge",
                   (({"check": r.id, "subject": r.subject, "status": r.status, "host": host}, PROM_VALUE[r.status])
                    for r in report.results))
    lines += family("llmhost_preflight_results", "Number of preflight results by status.", "gauge",
                    (({"status": status, "host": host}, count) for status, count in report.summary.items()))
    lines += family("llmhost_preflight_run_timestamp_seconds", "When this preflight report was made (Unix time).",
                    "gauge", [({"host": host}, time.time())])
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str, stream=sys.stdout) -> str:
    if fmt == "json":
        return as_json(report)
    if fmt == "prometheus":
        return prometheus(report)
    return text(report, colour=stream is not None and use_colour(stream))
