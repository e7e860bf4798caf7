"""`llmhost bench`: time to first token, inter-token latency, prompt and decode tokens/s, requests/s
and latency percentiles of an OpenAI-compatible chat endpoint, at several concurrencies.

Tokens are counted as streamed content chunks (llama.cpp and vLLM send one token per chunk); the
prompt's token count comes from a non-streamed request's `usage`. Every request starts with its own
line, so a server's prompt-prefix cache cannot turn prompt processing into a cache hit.
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from llmhost.errors import LlmhostError

DEFAULT_PROMPT = ("Explain in plain words why a large language model needs fast memory bandwidth to generate "
                  "text quickly, and what an operator can do about it.")


@dataclass
class Sample:
    ok: bool
    ttft: float = 0.0
    latency: float = 0.0
    tokens: int = 0
    error: str = ""
    gaps: tuple[float, ...] = ()  # seconds between consecutive streamed tokens


def _post(url: str, body: dict, api_key: str | None, timeout: float):
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the operator's endpoint


def endpoint_url(base: str) -> str:
    base = base.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(base)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise LlmhostError(f"endpoint {base!r} is not a valid URL ({exc}): expected e.g. http://127.0.0.1:8080") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LlmhostError(f"endpoint {base!r} is not an http(s) URL: expected e.g. http://127.0.0.1:8080")
    return base if base.endswith("/v1/chat/completions") else base.removesuffix("/v1") + "/v1/chat/completions"


def prompt_tokens(url: str, model: str, prompt: str, api_key: str | None, timeout: float) -> int | None:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1, "stream": False}
    try:
        with _post(url, body, api_key, timeout) as response:
            answer = json.loads(response.read(1 << 20))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LlmhostError(f"endpoint {url} did not answer a chat completion: {exc}") from None
    usage = answer.get("usage") if isinstance(answer, dict) else None
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None


def _content(line: str) -> bool:
    """One SSE line -> whether it carries generated text (malformed or foreign lines carry none)."""
    if not line.startswith("data:") or line == "data: [DONE]":
        return False
    try:
        chunk = json.loads(line[5:])
    except ValueError:
        return False
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    delta = first.get("delta")
    return isinstance(delta, dict) and isinstance(delta.get("content"), str) and bool(delta["content"])


def one_request(url: str, model: str, prompt: str, max_tokens: int, api_key: str | None, timeout: float) -> Sample:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    start = time.perf_counter()
    stamps: list[float] = []
    try:
        with _post(url, body, api_key, timeout) as response:
            while raw := response.readline(1 << 20):  # a line is bounded, whatever the server sends
                if time.perf_counter() - start > timeout:
                    return Sample(False, error=f"no complete reply within {timeout:g} s")
                if _content(raw.decode("utf-8", "replace").strip()):
                    stamps.append(time.perf_counter())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Sample(False, error=str(exc)[:120])
    end = time.perf_counter()
    if not stamps:
        return Sample(False, error="no content streamed")
    return Sample(True, stamps[0] - start, end - start, len(stamps),
                  gaps=tuple(b - a for a, b in zip(stamps, stamps[1:])))


def _unique(prompt: str, serial: int, run_id: str) -> str:
    # Distinct in every request of every run: a server caches prompt prefixes per slot, and a prompt it saw
    # before (an earlier run, or another endpoint in front of the same server) would skip its prefill.
    return f"Request {run_id}-{serial:05d}.\n{prompt}"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(samples: list[Sample], wall: float, concurrency: int, prompt_len: int | None) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    result: dict[str, Any] = {"concurrency": concurrency, "requests": len(samples), "errors": len(samples) - len(good),
                              "wall_s": round(wall, 3)}
    if not good:
        return result
    decode = [(s.tokens - 1) / (s.latency - s.ttft) for s in good if s.tokens > 1 and s.latency > s.ttft]
    ttft = [s.ttft for s in good]
    gaps = [g for s in good for g in s.gaps]
    result.update({
        "ttft_p50_s": round(statistics.median(ttft), 4),
        "ttft_p95_s": round(_pct(ttft, 0.95), 4),
        "prompt_tokens_per_s": round(prompt_len / statistics.median(ttft), 1) if prompt_len else None,
        "decode_tokens_per_s": round(statistics.median(decode), 2) if decode else None,
        "itl_p50_s": round(statistics.median(gaps), 4) if gaps else None,
        "itl_p95_s": round(_pct(gaps, 0.95), 4) if gaps else None,
        "throughput_tokens_per_s": round(sum(s.tokens for s in good) / wall, 2),
        "requests_per_s": round(len(good) / wall, 3),
        "latency_p50_s": round(statistics.median([s.latency for s in good]), 3),
        "latency_p95_s": round(_pct([s.latency for s in good], 0.95), 3),
    })
    return result


DEFAULT_CONCURRENCY = (1, 4, 8, 16)


def run(endpoint: str, model: str = "default", concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY, requests: int | None = None,
        max_tokens: int = 64, prompt: str = DEFAULT_PROMPT, api_key: str | None = None, timeout: float = 300.0,
        progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    url = endpoint_url(endpoint)
    if any(c < 1 for c in concurrency) or max_tokens < 2:
        raise LlmhostError(f"--concurrency {concurrency} must be >= 1 and --max-tokens {max_tokens} >= 2")
    run_id = secrets.token_hex(4)
    plen = prompt_tokens(url, model, _unique(prompt, 0, run_id), api_key, timeout)
    levels = []
    serial = 0
    for level in concurrency:
        count = requests or max(4, 2 * level)
        with ThreadPoolExecutor(max_workers=level) as pool:
            start = time.perf_counter()
            futures = []
            for _ in range(count):
                serial += 1
                futures.append(pool.submit(one_request, url, model, _unique(prompt, serial, run_id), max_tokens, api_key,
                                           timeout))
            samples = []
            for future in futures:
                samples.append(future.result())
                if progress:
                    progress(1)
            wall = time.perf_counter() - start
        levels.append(summarize(samples, wall, level, plen))
    return {"endpoint": url, "model": model, "prompt_tokens": plen, "max_tokens": max_tokens, "levels": levels}


RATIO_KEYS = ("decode_tokens_per_s", "throughput_tokens_per_s", "requests_per_s", "ttft_p50_s", "itl_p50_s",
              "latency_p50_s")


def roofline_share(result: dict[str, Any], roofline_tokens_per_s: float) -> float | None:
    """Decode tokens/s at one user as a share of the memory-bandwidth roofline."""
    single = next((lv for lv in result["levels"] if lv["concurrency"] == 1), None)
    decode = single.get("decode_tokens_per_s") if single else None
    return round(decode / roofline_tokens_per_s, 3) if decode else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per concurrency: b / a for each metric (above 1 is better for rates, worse for times)."""
    rows = []
    for left, right in zip(a["levels"], b["levels"]):
        row = {"concurrency": left["concurrency"]}
        for key in RATIO_KEYS:
            if left.get(key) and right.get(key):
                row[key] = round(right[key] / left[key], 3)
        rows.append(row)
    return rows


def ratios_as_text(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The comparison as a table: second endpoint / first, per concurrency, with each side's failed requests."""
    lines = [f"ratios (second / first: {b['endpoint']} / {a['endpoint']}; rates above 1 and times below 1 are better)",
             f"{'conc':>4} {'decode t/s':>10} {'total t/s':>9} {'req/s':>6} {'TTFT p50':>8} {'ITL p50':>7} "
             f"{'lat p50':>7} {'err':>7}"]
    for row, left, right in zip(compare(a, b), a["levels"], b["levels"]):
        cells = [(f"{row[key]:.2f}x" if key in row else "-").rjust(width)
                 for key, width in zip(RATIO_KEYS, (10, 9, 6, 8, 7, 7))]
        lines.append(f"{row['concurrency']:>4} {' '.join(cells)} {left['errors']:>3}/{right['errors']}")
    return "\n".join(lines)


def as_text(result: dict[str, Any]) -> str:
    lines = [f"{result['endpoint']}  model={result['model']}  prompt={result['prompt_tokens']} tokens  "
             f"max_tokens={result['max_tokens']}",
             f"{'conc':>4} {'reqs':>4} {'err':>3} {'TTFT p50':>9} {'prompt t/s':>10} {'decode t/s':>10} "
             f"{'ITL p50':>8} {'ITL p95':>8} {'total t/s':>9} {'req/s':>6} {'lat p50':>8} {'lat p95':>8}"]
    for lv in result["levels"]:
        def cell(key, width, fmt="{:.2f}"):
            value = lv.get(key)
            return (fmt.format(value) if value is not None else "-").rjust(width)
        lines.append(f"{lv['concurrency']:>4} {lv['requests']:>4} {lv['errors']:>3} {cell('ttft_p50_s', 9, '{:.3f}s')} "
                     f"{cell('prompt_tokens_per_s', 10, '{:.1f}')} {cell('decode_tokens_per_s', 10)} "
                     f"{cell('itl_p50_s', 8, '{:.4f}s')} {cell('itl_p95_s', 8, '{:.4f}s')} "
                     f"{cell('throughput_tokens_per_s', 9)} {cell('requests_per_s', 6)} "
                     f"{cell('latency_p50_s', 8, '{:.2f}s')} {cell('latency_p95_s', 8, '{:.2f}s')}")
    return "\n".join(lines)

