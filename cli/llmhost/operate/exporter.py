"""`llmhost exporter`: an HTTP endpoint Prometheus scrapes for the GPUs (gpu_metrics) and for whether
the model server is ready (its /health), for hosts without NVIDIA's DCGM exporter.

Each scrape reads the host afresh; scrapes are answered one at a time so two never run nvidia-smi
at once. A snapshot replays the same readings on any machine (demonstrations, tests).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from llmhost.host.facts import Facts
from llmhost.host.hostio import Host
from llmhost.operate import gpu_metrics
from llmhost.promtext import family

HEALTH_TIMEOUT_S = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def model_server_lines(url: str | None, timeout: float = HEALTH_TIMEOUT_S) -> list[str]:
    """llama-server and vLLM both answer GET /health with 200 once the model is loaded (503 while loading)."""
    if not url:
        return []
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as reply:  # noqa: S310 - configured URL
            ready = reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        ready = False
    took = time.monotonic() - start
    labels = {"url": url}
    return (family("llmhost_model_server_ready", "1 when the model server's /health answers 200.", "gauge",
                   [(labels, 1 if ready else 0)])
            + family("llmhost_model_server_health_seconds", "Time the /health probe took.", "gauge",
                     [(labels, round(took, 4))]))


def scrape(host_factory: Callable[[], Host], model_server: str | None) -> str:
    start = time.monotonic()
    body = gpu_metrics.exposition(Facts(host_factory()))
    extra = model_server_lines(model_server)
    extra += family("llmhost_exporter_scrape_seconds", "Time this scrape took to read the host.", "gauge",
                    [({}, round(time.monotonic() - start, 4))])
    return body + "\n".join(extra) + "\n"


def serve(address: str, port: int, host_factory: Callable[[], Host], model_server: str | None) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            try:
                with lock:
                    body = scrape(host_factory, model_server).encode()
            except Exception as exc:  # noqa: BLE001 - one bad scrape must not take the exporter down
                self.send_error(500, f"scrape failed: {type(exc).__name__}: {exc}"[:200])
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every few seconds would flood the journal
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        server.server_close()
