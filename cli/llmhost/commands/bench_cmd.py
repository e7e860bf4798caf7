"""`llmhost bench`."""

from __future__ import annotations

import json
import os
import sys

import click

from llmhost.runtime import bench as engine
from llmhost.plan import gguf_header
from llmhost.runtime import membw
from llmhost.errors import LlmhostError


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise LlmhostError(f"--concurrency {text!r} is not a list of numbers: expected e.g. 1,4,8") from None
    if not levels or min(levels) < 1:
        raise LlmhostError(f"--concurrency {text!r}: every level must be >= 1")
    return levels


@click.command()
@click.argument("endpoint")
@click.option("--compare", "others", metavar="URL", multiple=True,
              help="Run the same workload against more endpoints in the same run and print each one's ratios to the "
                   "first (repeatable).")
@click.option("--model", default="default", show_default=True, help="Model name sent in requests.")
@click.option("--concurrency", default=",".join(map(str, engine.DEFAULT_CONCURRENCY)), show_default=True,
              help="Concurrent requests, per level.")
@click.option("--requests", type=click.IntRange(min=1), help="Requests per level (default: max(4, 2 x concurrency)).")
@click.option("--max-tokens", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--prompt", default=engine.DEFAULT_PROMPT, help="Prompt text.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True, help="Seconds per request.")
@click.option("--roofline", "roofline_model", metavar="MODEL.gguf",
              help="Also measure this machine's memory bandwidth on all cores and report each endpoint's decode "
                   "as a share of the roofline for this model (run on the server's machine).")
@click.option("--json", "as_json", is_flag=True)
def bench(endpoint, others, model, concurrency, requests, max_tokens, prompt, timeout, roofline_model, as_json):
    """Measure an OpenAI-compatible endpoint: TTFT, inter-token latency, prompt and decode tokens/s,
    requests/s, p50/p95 latency.

    The API key, if the endpoint needs one, is read from LLMHOST_API_KEY (never from the command line).
    """
    levels = _levels(concurrency)
    weights = gguf_header.read(roofline_model)["weight_bytes"] if roofline_model else None
    api_key = os.environ.get("LLMHOST_API_KEY")
    targets = [endpoint, *others]
    for target in targets:
        engine.endpoint_url(target)  # a bad URL is one line before anything runs
    total = sum(requests or max(4, 2 * level) for level in levels) * len(targets)
    results = []
    with click.progressbar(length=total, label="llmhost bench", file=sys.stderr) as bar:
        for target in targets:
            results.append(engine.run(target, model, levels, requests, max_tokens, prompt, api_key, timeout,
                                      progress=bar.update))
    failed = any(lv["errors"] == lv["requests"] for r in results for lv in r["levels"])
    roof = None
    if weights:
        bandwidth = membw.read_bandwidth()
        roof = {"model": roofline_model, "weight_bytes": weights, "bandwidth_bytes_per_s": round(bandwidth["bytes_per_s"]),
                "workers": bandwidth["workers"], "roofline_tokens_per_s": round(membw.roofline(weights, bandwidth["bytes_per_s"]), 2),
                "decode_share_at_1": [engine.roofline_share(r, membw.roofline(weights, bandwidth["bytes_per_s"]))
                                      for r in results]}
    if as_json:
        out = {"results": results}
        if others:
            out["ratios"] = [engine.compare(results[0], result) for result in results[1:]]
        if roof:
            out["roofline"] = roof
        click.echo(json.dumps(out, indent=2))
    else:
        for result in results:
            click.echo(engine.as_text(result))
            click.echo()
        for result in results[1:]:
            click.echo(engine.ratios_as_text(results[0], result))
            click.echo()
        if roof:
            click.echo(f"roofline: {roof['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s read on {roof['workers']} cores / "
                       f"{weights / 1e6:.1f} MB of weights per token = {roof['roofline_tokens_per_s']:.1f} tok/s")
            for result, share in zip(results, roof["decode_share_at_1"]):
                click.echo(f"  {result['endpoint']}: decode at 1 user = "
                           + (f"{share:.0%} of the roofline" if share is not None else "not measured"))
    sys.exit(1 if failed else 0)
