"""`llmhost plan --verify`: run the plan for real and put llama.cpp's own numbers beside the prediction.

llama-server starts on a free loopback port with the planned flags; its log says what it allocated
(model, KV and compute buffers, in MiB, per device), and its /completion answer says how fast it
decoded (timings.predicted_per_second). Nothing is installed or left behind.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from llmhost.errors import LlmhostError
from llmhost.runtime import flags, serve

MIB = 1 << 20
# llama.cpp's load and context logs, e.g. "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB",
# "llama_kv_cache:        CPU KV buffer size =    12.75 MiB", "sched_reserve:  CPU compute buffer size = 23.30 MiB".
_BUFFER = re.compile(r"(model|KV|compute) buffer size =\s+([\d.]+) MiB")
# About 130 tokens: long enough for the prompt's rate to be a batch's, as plan predicts it.
PROMPT = " ".join(["Write a short note to a colleague about the weather and the week ahead."] * 8)


def allocations(log: str) -> dict[str, float]:
    """Bytes llama.cpp reported per kind (model weights incl. repacked copies, KV cache, compute)."""
    found = {"model": 0.0, "KV": 0.0, "compute": 0.0}
    for kind, mib in _BUFFER.findall(log):
        found[kind] += float(mib) * MIB
    return {"weights": found["model"], "kv_cache": found["KV"], "compute": found["compute"]}


def _complete(url: str, tokens: int, timeout: float) -> tuple[float, float | None]:
    """-> (decode tokens/s, prompt tokens/s) from llama-server's own timings."""
    body = json.dumps({"prompt": PROMPT, "n_predict": tokens, "cache_prompt": False, "temperature": 0,
                       "ignore_eos": True}).encode()
    request = urllib.request.Request(f"{url}/completion", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - loopback only
            data = json.loads(answer.read(1 << 20))
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise LlmhostError(f"llama-server did not complete a request at {url}: {getattr(exc, 'reason', exc)}") from None
    timings = (data.get("timings") or {}) if isinstance(data, dict) else {}
    speed, prompt = timings.get("predicted_per_second"), timings.get("prompt_per_second")
    if not isinstance(speed, (int, float)) or speed <= 0:
        raise LlmhostError("llama-server's /completion answer has no timings.predicted_per_second")
    return float(speed), float(prompt) if isinstance(prompt, (int, float)) and prompt > 0 else None


INSTALLED = "/opt/llmhost/llama.cpp"


def find_server(given: str | None) -> str:
    """--server, else llama-server on PATH, else the newest the inference role unpacked."""
    if given:
        return given
    found = shutil.which("llama-server") or next(
        (str(p) for p in sorted(Path(INSTALLED).glob("llama.cpp-*/bin/llama-server"), key=lambda p: p.stat().st_mtime,
                                reverse=True)), None)
    if not found:
        raise LlmhostError(f"no llama-server on PATH or under {INSTALLED}: give --server PATH")
    return found


def run(result: dict[str, Any], model_path: str, server: str | None, tokens: int = 64, rounds: int = 3,
        timeout: float = 300.0) -> dict[str, Any]:
    """-> {'measured': {weights, kv_cache, compute, decode_tokens_per_s, prompt_tokens_per_s}, 'predicted': {...},
    'ratio': {...}}"""
    server = find_server(server)
    binary = Path(server)
    if not binary.is_file():
        raise LlmhostError(f"--server {server!r} is not a file: expected the llama-server binary")
    try:
        help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60,
                                   check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlmhostError(f"--server {server!r} does not run as llama-server ({type(exc).__name__}: {exc})") from None
    port = serve._free_port()
    settings = result["runtime"]["settings"]
    args = flags.llama_server(settings, model=model_path, host="127.0.0.1", port=port, help_text=help_text,
                              chat_template=flags.chat_template_for(result["model"].get("arch"),
                                                                    result["model"].get("chat_template", True)),
                              overrides={"--log-verbosity": "4", "--metrics": False})
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([str(binary), *flags.as_argv(args)], stdout=log, stderr=subprocess.STDOUT)
        try:  # the binary ran for --help above, so it starts here too
            serve.wait_ready(f"{url}/health", timeout, alive=lambda: proc.poll() is None)
            _complete(url, 8, timeout)  # warm: page the weights in
            runs = [_complete(url, tokens, timeout) for _ in range(rounds)]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.seek(0)
        prompts = [p for _, p in runs if p]
        measured = {**allocations(log.read()), "decode_tokens_per_s": round(statistics.median(d for d, _ in runs), 1),
                    "prompt_tokens_per_s": round(statistics.median(prompts), 1) if prompts else None}
    predicted = {"weights": result["bytes"]["weights"], "kv_cache": result["bytes"]["kv_cache"],
                 "compute": result["bytes"]["compute"], "decode_tokens_per_s": result["speed"]["decode_tokens_per_s"],
                 "prompt_tokens_per_s": result["speed"].get("prompt_tokens_per_s")}
    ratio = {k: round(predicted[k] / measured[k], 3) if predicted.get(k) and measured.get(k) else None
             for k in predicted}
    return {"measured": measured, "predicted": predicted, "ratio": ratio, "server": str(binary),
            "flags": flags.as_argv(args)}
