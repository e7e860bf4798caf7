#!/usr/bin/env python3
"""Wall time of `llmhost preflight`, live on this host and replaying a snapshot of it.

    .venv/bin/python scripts/bench-preflight.py [--runs N]

Prints the median and worst of N in-process runs (the engine, not Python start-up), and one
cold run of the whole command as a user starts it. Targets: live <= 1 s, replay <= 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from llmhost.checks import preflight
from llmhost.host import snapshot
from llmhost.host.hostio import LiveHost, SnapshotHost


def timed(func, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.write(snapshot.capture(), f"{tmp}/snap")
        live = timed(lambda: preflight.run(LiveHost()), runs)
        replay = timed(lambda: preflight.run(SnapshotHost(__import__("pathlib").Path(f"{tmp}/snap"))), runs)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmhost", "preflight", "--json"], capture_output=True, check=False)
        cold_live = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmhost", "preflight", "--json", "--snapshot", f"{tmp}/snap"],
                       capture_output=True, check=False)
        cold_replay = time.perf_counter() - start
    for name, values in (("live", live), ("replay", replay)):
        print(f"{name:7} engine: median {statistics.median(values) * 1000:7.1f} ms, worst {max(values) * 1000:7.1f} ms "
              f"({runs} runs)")
    print(f"live    command (cold, with Python start-up): {cold_live * 1000:7.1f} ms")
    print(f"replay  command (cold, with Python start-up): {cold_replay * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
