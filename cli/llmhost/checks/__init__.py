"""The preflight check catalogue: one small function per check, registered under a stable id.

A check takes Facts and returns Findings (one per subject: the host, or a GPU's PCI address).
Ids are stable: users skip them by id (`--skip pcie.link_width`) and monitoring keys on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

STATUSES = ("pass", "warn", "fail", "skip")


@dataclass
class Finding:
    status: str
    message: str
    remedy: str = ""
    subject: str = "host"
    data: dict[str, Any] = field(default_factory=dict)


def passed(message: str, subject: str = "host", **data) -> Finding:
    return Finding("pass", message, "", subject, data)


def warned(message: str, remedy: str, subject: str = "host", **data) -> Finding:
    return Finding("warn", message, remedy, subject, data)


def failed(message: str, remedy: str, subject: str = "host", **data) -> Finding:
    return Finding("fail", message, remedy, subject, data)


def skipped(message: str, subject: str = "host") -> Finding:
    return Finding("skip", message, "", subject, {})


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    run: Callable[..., Iterable[Finding]]
    needs_gpu: bool = False  # the engine reports `skip` ("no NVIDIA GPU") on hosts without one


CATALOGUE: dict[str, Check] = {}


def check(check_id: str, title: str, needs_gpu: bool = False):
    def register(func):
        if check_id in CATALOGUE:
            raise ValueError(f"check id {check_id} registered twice")
        CATALOGUE[check_id] = Check(check_id, title, func, needs_gpu)
        return func
    return register


def catalogue() -> dict[str, Check]:
    # Importing the modules registers their checks, in this order (the report's order).
    from llmhost.checks import gpu, driver, compat, pcie, numa_cpu, memory, system, gateway  # noqa: F401
    return CATALOGUE
