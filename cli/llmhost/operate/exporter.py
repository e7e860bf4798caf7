"""`llmhost exporter`: an HTTP endpoint Prometheus scrapes for the GPUs (gpu_metrics) and for whether
the model server is ready (its /health), for hosts without NVIDIA's DCGM exporter.

Each scrape reads the host afresh; scrapes are answered one at a time so two never run nvidia-smi
at once. A snapshot replays the same readings on any machine (demonstrations, tests).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from llmhost.errors import LlmhostError
from llmhost.host.facts import Facts
from llmhost.host.hostio import Host
from llmhost.operate import gpu_metrics
from llmhost.promtext import family

HEALTH_TIMEOUT_S = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def check_url(url: str) -> str:
    """A model server's base URL as the exporter probes it: http(s)://HOST[:PORT], nothing else."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        parts = None
    if (not parts or parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.path not in ("", "/") or parts.query or parts.fragment or any(c.isspace() for c in url)):
        raise LlmhostError(f"--model-server {url!r}: expected http://HOST:PORT (no path, query or credentials)")
    return url.rstrip("/")


def _probe(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as reply:  # noqa: S310 - a checked URL
            return reply.status == 200
    except Exception:  # noqa: BLE001 - a server that answers anything but 200 (or garbage) is not ready
        return False


def model_server_lines(url: str | None, timeout: float = HEALTH_TIMEOUT_S) -> list[str]:
    """llama-server and vLLM both answer GET /health with 200 once the model is loaded (503 while loading).
    The whole probe is bounded, not each read: a server that drips bytes cannot hold a scrape."""
    if not url:
        return []
    start = time.monotonic()
    answer: list[bool] = []
    worker = threading.Thread(target=lambda: answer.append(_probe(url, timeout)), daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    ready = bool(answer and answer[0])
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

    # An idle or half-sent request is dropped after this many seconds (a scrape takes well under one).
    Handler.timeout = 10

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        daemon_threads = True

    server = Server((address, port), Handler)
    try:
        server.serve_forever()
    finally:
        server.server_close()
