"""Memory read bandwidth of this machine, measured on every core at once as STREAM does: the limit a
memory-bound decode (one read of the weights per token) cannot beat.

Each worker process fills its own buffer (so its pages are real and local to its node) and scans it
with bytes.find, which glibc runs as a vectorised memchr; the bandwidth is the bytes of all workers
over the slowest worker's time, best of several rounds.
"""

from __future__ import annotations

import multiprocessing
import os
import time

from llmhost.errors import LlmhostError


def _worker(size: int, rounds: int, barrier, results) -> None:
    buffer = bytearray(b"\x01") * size
    best = float("inf")
    for _ in range(rounds):
        barrier.wait()
        start = time.perf_counter()
        buffer.find(b"\x02")
        best = min(best, time.perf_counter() - start)
    results.put(best)


def read_bandwidth(workers: int | None = None, mib_per_worker: int = 256, rounds: int = 5) -> dict:
    """-> {'bytes_per_s', 'workers', 'mib_per_worker'}: every CPU by default."""
    workers = workers or len(os.sched_getaffinity(0))
    if workers < 1 or mib_per_worker < 16:
        raise LlmhostError(f"bandwidth test with {workers} workers of {mib_per_worker} MiB: expected >= 1 and >= 16")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(workers), context.Queue()
    size = mib_per_worker << 20
    procs = [context.Process(target=_worker, args=(size, rounds, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        times = [results.get(timeout=300) for _ in procs]
    except Exception as exc:  # noqa: BLE001 - a worker that died (memory) leaves the queue empty
        raise LlmhostError(f"the bandwidth test did not finish ({type(exc).__name__}): too little free memory for "
                           f"{workers} x {mib_per_worker} MiB?") from None
    finally:
        for proc in procs:
            proc.join(timeout=10)
    return {"bytes_per_s": workers * size / max(times), "workers": workers, "mib_per_worker": mib_per_worker}


def roofline(bytes_per_token: int, bandwidth: float) -> float:
    """Decode tokens/s if every token reads bytes_per_token once at this bandwidth."""
    return bandwidth / bytes_per_token
