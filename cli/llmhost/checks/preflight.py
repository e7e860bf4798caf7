"""Run the check catalogue against a Host and collect one Result per check and subject."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from llmhost.checks import STATUSES, catalogue, skipped
from llmhost.errors import LlmhostError
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.hostio import Host

SCHEMA = "llmhost.preflight/1"
NO_GPU = "no NVIDIA GPU"


@dataclass
class Result:
    id: str
    status: str
    subject: str
    message: str
    remedy: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    host: dict[str, Any]
    results: list[Result]

    @property
    def summary(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        for result in self.results:
            counts[result.status] += 1
        return counts

    def exit_code(self, strict: bool = False) -> int:
        summary = self.summary
        return 1 if summary["fail"] or (strict and summary["warn"]) else 0

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "host": self.host, "summary": self.summary,
                "results": [asdict(r) for r in self.results]}


def validate_ids(ids: tuple[str, ...] | list[str], option: str) -> None:
    known = catalogue()
    for check_id in ids:
        if check_id not in known:
            raise LlmhostError(f"{option} {check_id!r} is not a check id: run 'llmhost preflight --list' to see them")


def host_info(facts: Facts, source: str) -> dict[str, Any]:
    def attempt(getter):
        try:
            return getter()
        except Unavailable:
            return None

    meta = getattr(facts.host, "meta", {})
    hostname = (facts.host.read("/proc/sys/kernel/hostname") or "").strip() or meta.get("hostname")
    return {
        "hostname": hostname,
        "os": attempt(facts.os_key),
        "kernel": attempt(lambda: facts.kernel_release),
        "source": source,
        "captured_at": meta.get("captured_at") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def run(host: Host, source: str = "live", only=(), skip=(), model_dir: str | None = None,
        model_bytes: int | None = None, model_dir_fixed: bool = False) -> Report:
    validate_ids(only, "--only")
    validate_ids(skip, "--skip")
    facts = Facts(host, model_dir=model_dir, model_bytes=model_bytes, model_dir_fixed=model_dir_fixed)
    results: list[Result] = []
    for check_id, check in catalogue().items():
        if only and check_id not in only:
            continue
        if check_id in skip:
            results.append(Result(check_id, "skip", "host", "skipped on request (--skip)"))
            continue
        if check.needs_gpu and facts.gpus_absent:
            results.append(Result(check_id, "skip", "host", NO_GPU))
            continue
        try:
            findings = list(check.run(facts))
        except Unavailable as exc:
            findings = [skipped(str(exc))]
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings = [skipped(f"could not be evaluated: {type(exc).__name__}: {exc}")]
        for finding in findings:
            results.append(Result(check_id, finding.status, finding.subject, finding.message, finding.remedy,
                                  finding.data))
    return Report(host_info(facts, source), results)
