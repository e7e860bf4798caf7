"""The TLS gateway's cost on time to first token, measured on the same model server in one run.

    .venv/bin/python scripts/bench-gateway.py DIRECT_URL GATEWAY_URL --cafile CERT [--pairs 40] [--model NAME]

One user, one streaming request at a time, alternating: direct, through the gateway, direct ... so both
sides see the same server in the same state. Each request opens its own connection, as `llmhost bench`
does (so the gateway side pays a full TLS handshake every time: the worst case). The gateway's key is read
from LLMHOST_API_KEY. Prints each side's TTFT median and p95 and the median of the paired differences.
"""

from __future__ import annotations

import argparse
import os
import ssl
import statistics
import sys
import urllib.request

from llmhost.runtime import bench

parser = argparse.ArgumentParser()
parser.add_argument("direct")
parser.add_argument("gateway")
parser.add_argument("--cafile", required=True, help="the gateway's certificate (or its CA)")
parser.add_argument("--pairs", type=int, default=40)
parser.add_argument("--model", default="default")
parser.add_argument("--max-tokens", type=int, default=2)
args = parser.parse_args()
key = os.environ.get("LLMHOST_API_KEY")
if not key:
    sys.exit("bench-gateway: set LLMHOST_API_KEY to a gateway client's key")
urllib.request.install_opener(urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=args.cafile))))
urls = {"direct": bench.endpoint_url(args.direct), "gateway": bench.endpoint_url(args.gateway)}
ttft: dict[str, list[float]] = {"direct": [], "gateway": []}
for i in range(args.pairs):
    for side, url in urls.items():
        sample = bench.one_request(url, args.model, f"Pair {i} {side}: name one planet.", args.max_tokens, key, 120)
        if not sample.ok:
            sys.exit(f"bench-gateway: {side} request {i} failed: {sample.error}")
        ttft[side].append(sample.ttft)
for side, values in ttft.items():
    ordered = sorted(values)
    print(f"{side:8s} TTFT median {statistics.median(values) * 1000:7.1f} ms   p95 "
          f"{ordered[int(0.95 * (len(ordered) - 1))] * 1000:7.1f} ms   ({len(values)} requests)")
differences = [g - d for d, g in zip(ttft["direct"], ttft["gateway"])]
print(f"gateway - direct, paired: median {statistics.median(differences) * 1000:+.1f} ms "
      f"(middle half {sorted(differences)[len(differences) // 4] * 1000:+.1f} to "
      f"{sorted(differences)[3 * len(differences) // 4] * 1000:+.1f} ms)")
