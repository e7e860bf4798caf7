"""Render a preflight Report as text for people, JSON, or Prometheus textfile samples."""

from __future__ import annotations

import json
import os
import sys

from llmhost.checks.preflight import Report

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


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(report: Report) -> str:
    """node_exporter textfile collector format."""
    host = _label(report.host.get("hostname") or "")
    lines = [
        "# HELP llmhost_preflight_check_status Result of one llmhost preflight check (0 pass, 1 warn, 2 fail, 3 skip).",
        "# TYPE llmhost_preflight_check_status gauge",
    ]
    for result in report.results:
        lines.append(f'llmhost_preflight_check_status{{check="{_label(result.id)}",subject="{_label(result.subject)}",'
                     f'status="{result.status}",host="{host}"}} {PROM_VALUE[result.status]}')
    lines += ["# HELP llmhost_preflight_results Number of preflight results by status.",
              "# TYPE llmhost_preflight_results gauge"]
    for status, count in report.summary.items():
        lines.append(f'llmhost_preflight_results{{status="{status}",host="{host}"}} {count}')
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str, stream=sys.stdout) -> str:
    if fmt == "json":
        return as_json(report)
    if fmt == "prometheus":
        return prometheus(report)
    return text(report, colour=use_colour(stream))
