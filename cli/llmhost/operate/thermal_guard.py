"""The thermal guard: when a GPU stays at or above the threshold, lower its power limit a step at a
time; when it has stayed cool, give the power back a step at a time, up to the limit it had before.

The controller (Guard.observe) only decides; what carries a decision out (nvidia-smi -pl) and what
records it (a JSON line, the textfile metrics) are separate, so the decisions replay on recorded
temperature traces. Never below the card's minimum limit, never above the limit it found.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from llmhost import atomic, knowledge
from llmhost.units import finite
from llmhost.errors import LlmhostError
from llmhost.promtext import family


@dataclass(frozen=True)
class Settings:
    threshold_c: float
    hysteresis_c: float = 5.0   # cool means threshold - hysteresis or below
    hold_s: float = 30.0        # this long hot before a step down, and between steps
    cool_s: float = 120.0       # this long cool before a step up, and between steps
    step_ratio: float = 0.10    # one step = this fraction of the card's [min, max] power range

    @classmethod
    def from_knowledge(cls, **overrides: Any) -> Settings:
        guard = knowledge.thresholds()["thermal_guard"]
        values = {"threshold_c": knowledge.thresholds()["gpu"]["temperature_warn_c"],
                  "hysteresis_c": guard["hysteresis_c"], "hold_s": guard["hold_s"], "cool_s": guard["cool_s"],
                  "step_ratio": guard["step_ratio"]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**{k: float(v) for k, v in values.items()})
        settings.check()
        return settings

    def check(self) -> None:
        for name, value in vars(self).items():
            if not math.isfinite(value):
                raise LlmhostError(f"thermal guard {name} {value}: expected a finite number")
        if not 40 <= self.threshold_c <= 110:
            raise LlmhostError(f"thermal guard threshold {self.threshold_c:g} °C: expected 40-110")
        if not 0 < self.hysteresis_c < self.threshold_c:
            raise LlmhostError(f"thermal guard hysteresis {self.hysteresis_c:g} °C: expected above 0 and below "
                               "the threshold")
        if self.hold_s < 0 or self.cool_s < 0:
            raise LlmhostError(f"thermal guard hold {self.hold_s:g} s / cool {self.cool_s:g} s: expected >= 0")
        if not 0 < self.step_ratio <= 1:
            raise LlmhostError(f"thermal guard step {self.step_ratio:g}: expected a fraction above 0, at most 1")


@dataclass(frozen=True)
class Reading:
    gpu: str                    # PCI address (what nvidia-smi -i accepts)
    temperature_c: float
    limit_w: float
    min_w: float
    max_w: float


@dataclass(frozen=True)
class Action:
    gpu: str
    kind: str                   # lower | raise
    from_w: float
    to_w: float
    temperature_c: float
    reason: str

    def as_record(self, at: float) -> dict[str, Any]:
        return {"time": round(at, 3), "event": "thermal_guard", "gpu": self.gpu, "action": self.kind,
                "from_w": self.from_w, "to_w": self.to_w, "temperature_c": self.temperature_c, "reason": self.reason}


@dataclass
class _State:
    restore_w: float | None = None   # the limit found when the guard first stepped in
    hot_since: float | None = None
    cool_since: float | None = None
    last_step: float | None = None
    last_seen: float | None = None
    floored: bool = False            # at the card's minimum and still hot: said once


@dataclass
class Guard:
    settings: Settings
    states: dict[str, _State] = field(default_factory=dict)

    def saved(self) -> dict[str, float]:
        """What must survive a restart: the limit to give back to each GPU the guard holds down."""
        return {gpu: s.restore_w for gpu, s in sorted(self.states.items()) if s.restore_w is not None}

    def restore(self, saved: dict[str, Any]) -> None:
        for gpu, watts in saved.items():
            if (isinstance(gpu, str) and isinstance(watts, (int, float)) and not isinstance(watts, bool)
                    and math.isfinite(watts)):
                self.states.setdefault(gpu, _State()).restore_w = float(watts)

    def failed(self, action: Action) -> None:
        """The change was not made: a last step up that cleared the GPU is owed again."""
        state = self.states.get(action.gpu)
        if state is not None and action.kind == "raise" and state.restore_w is None:
            state.restore_w = action.to_w

    def engaged(self, gpu: str) -> bool:
        return self.states.get(gpu, _State()).restore_w is not None

    def observe(self, reading: Reading, now: float) -> Action | None:
        s, cfg = self.states.setdefault(reading.gpu, _State()), self.settings
        if s.last_seen is not None and now - s.last_seen > max(cfg.hold_s, cfg.cool_s, 60.0):
            s.hot_since = s.cool_since = None  # readings stopped for a while: time hot or cool starts again
        s.last_seen = now
        # A remembered limit outside the card's range, or below what it now has (someone raised it, or
        # it rebooted to its default), is not one to give back.
        if s.restore_w is not None and not (reading.min_w <= s.restore_w <= reading.max_w
                                            and s.restore_w >= reading.limit_w):
            s.restore_w = None
        step = max(1.0, round((reading.max_w - reading.min_w) * cfg.step_ratio))
        hot = reading.temperature_c >= cfg.threshold_c
        cool = reading.temperature_c <= cfg.threshold_c - cfg.hysteresis_c
        s.hot_since = (s.hot_since if s.hot_since is not None else now) if hot else None
        s.cool_since = (s.cool_since if s.cool_since is not None else now) if cool else None
        if hot and now - s.hot_since >= cfg.hold_s and (s.last_step is None or now - s.last_step >= cfg.hold_s):
            target = max(reading.min_w, min(reading.max_w, reading.limit_w - step))
            if target >= reading.limit_w:
                if not s.floored:
                    s.floored = True
                    return Action(reading.gpu, "floor", reading.limit_w, reading.limit_w, reading.temperature_c,
                                  f"at the card's minimum {reading.min_w:g} W and still "
                                  f"{reading.temperature_c:g} °C: check cooling")
                return None
            if s.restore_w is None:
                s.restore_w = reading.limit_w
            s.last_step = now
            return Action(reading.gpu, "lower", reading.limit_w, target, reading.temperature_c,
                          f"{reading.temperature_c:g} °C >= {cfg.threshold_c:g} °C for {now - s.hot_since:.0f} s")
        if not hot:
            s.floored = False
        if (cool and s.restore_w is not None and now - s.cool_since >= cfg.cool_s
                and (s.last_step is None or now - s.last_step >= cfg.cool_s)):
            target = min(s.restore_w, reading.limit_w + step)
            if target >= s.restore_w:
                target, s.restore_w = s.restore_w, None
            s.last_step = now
            return Action(reading.gpu, "raise", reading.limit_w, target, reading.temperature_c,
                          f"{reading.temperature_c:g} °C <= {cfg.threshold_c - cfg.hysteresis_c:g} °C "
                          f"for {now - s.cool_since:.0f} s")
        return None


def readings_from(gpus: Iterable[dict[str, Any]]) -> list[Reading]:
    """GPU records (NVML or nvidia-smi) -> readings; a GPU without a temperature or a power range is one
    the guard cannot act on, and is left out."""
    out = []
    for gpu in gpus:
        values = [finite(gpu.get(k)) for k in ("temperature_c", "power_limit_w", "power_min_w", "power_max_w")]
        if isinstance(gpu.get("address"), str) and None not in values and 0 < values[2] <= values[3]:
            out.append(Reading(gpu["address"], *values))
    return out



def set_power_limit(gpu: str, watts: float) -> None:
    try:
        result = subprocess.run(["nvidia-smi", "-i", gpu, "-pl", f"{watts:g}"], capture_output=True, text=True,
                                timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LlmhostError(f"nvidia-smi -i {gpu} -pl {watts:g}: {exc}") from None
    if result.returncode != 0:
        raise LlmhostError(f"nvidia-smi -i {gpu} -pl {watts:g} failed: {(result.stdout + result.stderr).strip()[:200]}")


def metrics(guard: Guard, readings: list[Reading], actions: dict[tuple[str, str], int]) -> str:
    lines = family("llmhost_thermal_guard_threshold_celsius", "Temperature at which the guard steps in.", "gauge",
                   [({}, guard.settings.threshold_c)])
    lines += family("llmhost_thermal_guard_engaged", "1 while the guard holds a GPU below its power limit.",
                    "gauge", [({"address": r.gpu}, guard.engaged(r.gpu)) for r in readings])
    lines += family("llmhost_thermal_guard_power_limit_watts", "Power limit as the guard last saw it.", "gauge",
                    [({"address": r.gpu}, r.limit_w) for r in readings])
    lines += family("llmhost_thermal_guard_actions_total", "Power-limit changes the guard made.", "counter",
                    [({"address": gpu, "action": kind}, n) for (gpu, kind), n in sorted(actions.items())])
    return "\n".join(lines) + "\n"


def write_textfile(directory: str, text: str) -> None:
    atomic.write_text(Path(directory) / "llmhost_thermal_guard.prom", text, "--textfile-dir")


def load_state(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: nothing is held down that the guard knows of
    return data if isinstance(data, dict) else {}


def save_state(path: str | None, guard: Guard) -> None:
    if path:
        atomic.write_text(path, json.dumps(guard.saved()), "--state-file")


def run(settings: Settings, read: Callable[[], list[dict[str, Any]]], interval_s: float, textfile_dir: str | None,
        dry_run: bool, emit: Callable[[str], None], iterations: int | None = None,
        state_file: str | None = None) -> None:
    guard, counts = Guard(settings), {}
    guard.restore(load_state(state_file))

    def report(event: str, error: LlmhostError) -> None:
        emit(json.dumps({"time": round(time.time(), 3), "event": event, "error": str(error)}))

    done = 0
    while iterations is None or done < iterations:
        now = time.monotonic()  # decisions measure durations: a wall-clock jump must not shorten one
        try:
            readings = readings_from(read())
        except Exception as exc:  # noqa: BLE001 - a failed reading is reported; the next one may work
            readings = []
            report("thermal_guard_read_failed", LlmhostError(f"{type(exc).__name__}: {exc}"))
        for reading in readings:
            action = guard.observe(reading, now)
            if action is None:
                continue
            record = action.as_record(time.time())
            if action.kind in ("lower", "raise") and not dry_run:
                try:
                    set_power_limit(action.gpu, action.to_w)
                except LlmhostError as exc:
                    record["error"] = str(exc)
                    guard.failed(action)
            record["dry_run"] = dry_run
            counts[(action.gpu, action.kind)] = counts.get((action.gpu, action.kind), 0) + 1
            emit(json.dumps(record, ensure_ascii=False))
            if not dry_run:
                try:
                    save_state(state_file, guard)
                except LlmhostError as exc:
                    report("thermal_guard_state_not_saved", exc)
        if textfile_dir:
            try:
                write_textfile(textfile_dir, metrics(guard, readings, counts))
            except LlmhostError as exc:
                report("thermal_guard_metrics_not_written", exc)
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval_s)
