"""Change a serving host without breaking it: prove a new server build, model or flags with a real
decode before switching, drain the running server, switch, and put everything back if the new one
does not answer.

    ready   wait until a server's /health answers 200 (the unit's ExecStartPost: readiness)
    drain   wait (bounded) until the server has no request in flight (its /metrics)
    prove   start the candidate on a free loopback port, decode a few tokens, stop it; on a CPU
            variant that faults (AMX claimed but broken, an instruction the CPU lacks), disable that
            variant and try the next, down to the portable base backend
    switch  drain, keep the previous unit and model, put the new ones in place, restart; roll back
            when the new unit does not become ready
"""

from __future__ import annotations

import json
import math
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from llmhost import knowledge
from llmhost.errors import LlmhostError
from llmhost.host.parsers import system

PREVIOUS = ".llmhost-previous"
# In-flight gauges: llama-server (llamacpp:) and vLLM (vllm:).
_IN_FLIGHT = re.compile(r"^(llamacpp:requests_processing|llamacpp:requests_deferred|"
                        r"vllm:num_requests_running|vllm:num_requests_waiting)(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)
_CPU_BACKEND = re.compile(r"libggml-cpu(?:-[\w.]+)?\.so")


def _get(url: str, api_key: str | None, timeout: float) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_ready(url: str, timeout: float, api_key: str | None = None, alive: Callable[[], bool] = lambda: True,
               poll: float = 0.5) -> float:
    """Poll url (a /health endpoint) until it answers 200 -> seconds waited. llama-server answers 503
    while it loads the model."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        if not alive():
            raise LlmhostError(f"the server exited before {url} answered ({last})")
        try:
            status, _ = _get(url, api_key, min(5.0, max(0.5, timeout)))
            if status == 200:
                return time.monotonic() - start
            last = f"HTTP {status}"
        except (OSError, ValueError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(poll)
    raise LlmhostError(f"{url} was not ready within {timeout:g} s (last: {last})")


def in_flight(metrics_text: str) -> int | None:
    """A server's /metrics text -> requests being processed or queued; None when a gauge is not a
    count (negative, fractional, not finite, not a number)."""
    total = 0
    for _, value in _IN_FLIGHT.findall(metrics_text):
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number) or number < 0 or number != int(number):
            return None
        total += int(number)
    return total


def drain(base_url: str, timeout: float, api_key: str | None = None, poll: float = 1.0) -> dict[str, Any]:
    """Wait until the server at base_url has no request in flight, at most timeout seconds.
    A server that does not answer has nothing to drain."""
    start = time.monotonic()
    busy = None
    while True:
        try:
            status, text = _get(base_url.rstrip("/") + "/metrics", api_key, 5.0)
        except (OSError, ValueError):
            return {"drained": True, "waited_s": round(time.monotonic() - start, 1), "in_flight": 0,
                    "note": "server not answering"}
        if status != 200:
            return {"drained": False, "waited_s": 0.0, "in_flight": None,
                    "note": f"/metrics answered HTTP {status}: cannot tell what is in flight"}
        busy = in_flight(text)
        if busy is None:
            return {"drained": False, "waited_s": round(time.monotonic() - start, 1), "in_flight": None,
                    "note": "/metrics has an in-flight gauge that is not a count: cannot tell what is in flight"}
        waited = time.monotonic() - start
        if busy == 0 or waited >= timeout:
            return {"drained": busy == 0, "waited_s": round(waited, 1), "in_flight": busy}
        time.sleep(poll)


# --- prove ------------------------------------------------------------------------------------

def eligible_variants(cpuinfo: str, available: list[str]) -> list[str]:
    """CPU variants whose features /proc/cpuinfo claims, best (most features) first."""
    runtime = knowledge.load("runtimes")["llama_cpp"]
    try:
        flags = system.cpu_flags(cpuinfo)
    except ValueError:
        return []
    wanted = {v: runtime["cpu_variants"][v] for v in available if v in runtime["cpu_variants"]}
    ok = [v for v, feats in wanted.items() if all(runtime["cpuinfo_flags"][f] in flags for f in feats)]
    return sorted(ok, key=lambda v: (-len(wanted[v]), v))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proof_args(args: list[list[str]], port: int, key_file: str, cpu_only: bool) -> list[list[str]]:
    """The candidate's flags for a short proof beside the running server: loopback, a free port, a
    throwaway key, one small slot, no memory lock; no GPU layers when the GPU is busy serving."""
    replaced = {"--host": "127.0.0.1", "--port": str(port), "--ctx-size": "1024", "--parallel": "1",
                "--api-key-file": key_file}
    if cpu_only:
        replaced["--gpu-layers"] = "0"
    out = [pair for pair in args if pair[0] not in replaced and pair[0] not in ("--load-mode", "--mlock", "--no-mmap")]
    return out + [[flag, value] for flag, value in replaced.items()]


def signal_name(code: int) -> str:
    """How a process that exited with a negative code (killed by a signal) is named to people."""
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def run_once(server: Path, args: list[list[str]], timeout: float, user: str | None, cpu_only: bool,
             prompt: str = "The capital of France is") -> dict[str, Any]:
    """Start the server with these flags on a free loopback port, decode a few tokens, stop it."""
    port = _free_port()
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="llmhost-prove-") as tmp:
        key_file = Path(tmp, "key")
        key_file.write_text(key)
        log_path = Path(tmp, "server.log")
        if user:
            shutil.chown(tmp, user)
            shutil.chown(key_file, user)
        argv = [str(server)] + [part for pair in proof_args(args, port, str(key_file), cpu_only) for part in pair]
        with log_path.open("wb") as log:
            account = {}
            if user:  # the service's user and group only, as systemd runs it (not root's groups)
                entry = pwd.getpwnam(user)
                account = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
                                    start_new_session=True, **account)
        result: dict[str, Any] = {"ok": False}
        try:
            result["load_s"] = round(wait_ready(f"http://127.0.0.1:{port}/health", timeout, key,
                                                alive=lambda: proc.poll() is None), 2)
            result["cpu_backend"] = _mapped_cpu_backend(proc.pid)
            body = json.dumps({"prompt": prompt, "n_predict": 8, "temperature": 0}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body,
                                             {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                answer = json.loads(response.read(1 << 20))
            predicted = answer.get("tokens_predicted") if isinstance(answer, dict) else None
            timings = answer.get("timings") if isinstance(answer, dict) and isinstance(answer.get("timings"), dict) else {}
            if not isinstance(predicted, int) or predicted < 1:
                result["error"] = f"the server answered but decoded no token: {str(answer)[:200]}"
            else:
                result.update(ok=True, tokens=predicted, decode_tokens_per_s=timings.get("predicted_per_second"),
                              text=str(answer.get("content", ""))[:80])
        except (LlmhostError, OSError, ValueError) as exc:
            time.sleep(0.2)
            code = proc.poll()
            result["error"] = signal_name(code) if code is not None and code < 0 else (
                f"exited with {code}" if code is not None else str(getattr(exc, "reason", exc)))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log_text = log_path.read_text("utf-8", "replace")
        if not result["ok"]:
            result["log_tail"] = log_text.strip().splitlines()[-6:]
        return result


def _mapped_cpu_backend(pid: int) -> str | None:
    """Which CPU backend ggml loaded into the running server (release builds do not log it)."""
    try:
        found = _CPU_BACKEND.search(Path(f"/proc/{pid}/maps").read_text())
    except OSError:
        return None
    return found.group(0) if found else None


def _set_variant(bin_dir: Path, variants_dir: Path, variant: str | None) -> None:
    """Exactly one CPU variant (or none: the portable base) beside the binary, where ggml looks."""
    for link in bin_dir.glob("libggml-cpu-*.so"):
        link.unlink()
    if variant:
        (bin_dir / f"libggml-cpu-{variant}.so").symlink_to(Path("..") / variants_dir.name / f"libggml-cpu-{variant}.so")


def prove(install_dir: Path, model: str, args: list[list[str]], *, timeout: float = 600, user: str | None = None,
          cpu_only: bool = False, variants: list[str] | None = None, cpuinfo: str | None = None) -> dict[str, Any]:
    """Prove the artefact in install_dir with this model and these flags by a real decode.

    The first proof on a host picks the CPU variant: the best one the CPU claims, then the next
    whenever one faults, then the portable base. Its choice is kept (proven.json) and later proofs
    run only the chosen one. -> {ok, variant, cpu_backend, tried: [...], tokens, decode_tokens_per_s}
    """
    args = [pair for pair in args if pair[0] != "--model"] + [["--model", model]]
    bin_dir, variants_dir = install_dir / "bin", install_dir / "variants"
    server = bin_dir / "llama-server"
    if not server.is_file():
        raise LlmhostError(f"{server} does not exist: the llama.cpp artefact is not installed in {install_dir}")
    record_path = install_dir / "proven.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    available = sorted(p.name[len("libggml-cpu-"):-3] for p in variants_dir.glob("libggml-cpu-*.so"))
    if record is not None:
        candidates = [record.get("variant")]
    elif variants is not None:
        unknown = [v for v in variants if v not in available]
        if unknown:
            raise LlmhostError(f"CPU variant(s) {', '.join(unknown)} are not in this artefact: expected some of "
                               f"{', '.join(available) or 'none (built without variants)'}")
        candidates = list(variants) + [None]
    else:
        if cpuinfo is None:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        candidates = eligible_variants(cpuinfo, available) + [None]
    tried = []
    for variant in candidates:
        _set_variant(bin_dir, variants_dir, variant)
        outcome = run_once(server, args, timeout, user, cpu_only)
        tried.append({"variant": variant or "base", **{k: outcome.get(k) for k in ("ok", "error", "cpu_backend")}})
        if outcome["ok"]:
            result = {**outcome, "variant": variant or "base", "tried": tried}
            record_path.write_text(json.dumps({"variant": variant, "tried": tried, "at": int(time.time())}) + "\n")
            return result
        if not str(outcome.get("error", "")).startswith("killed by"):
            break  # the model or the flags failed, not the CPU backend: another variant would fail alike
    if record is not None:
        _set_variant(bin_dir, variants_dir, record.get("variant"))
    return {**outcome, "ok": False, "variant": None, "tried": tried}


# --- switch -----------------------------------------------------------------------------------

def _systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def _journal(unit: str) -> list[str]:
    out = subprocess.run(["journalctl", "-u", unit, "-n", "12", "--no-pager", "-o", "cat"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip().splitlines()[-12:]


def _previous(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS)


def switch(unit: str, copies: list[tuple[Path, Path]], moves: list[tuple[Path, Path]], base_url: str,
           drain_timeout: float, api_key: str | None = None) -> dict[str, Any]:
    """Drain the running service, put the staged files in place (copies: the unit, its key; moves:
    models, renamed), restart. The unit's readiness step (ExecStartPost: `runtime ready`) makes the
    restart fail when the new server does not answer; then the previous files come back and the
    previous server is restarted."""
    was_active = _systemctl("is-active", "--quiet", unit).returncode == 0
    drained = drain(base_url, drain_timeout, api_key) if was_active else {"drained": True, "waited_s": 0}
    kept: list[tuple[Path, Path | None]] = []  # (final, its previous copy, or None when there was none)
    try:
        for staged, final in copies + moves:
            if final.exists():
                final.replace(_previous(final))
                kept.append((final, _previous(final)))
            else:
                kept.append((final, None))
            if (staged, final) in moves:
                staged.replace(final)
            else:
                shutil.copy2(staged, final)
                stat = staged.stat()
                os.chown(final, stat.st_uid, stat.st_gid)
    except OSError as exc:
        _restore(kept, moves)
        raise LlmhostError(f"switching {unit} failed before the restart ({exc}); the previous files are back") from None
    _systemctl("daemon-reload")
    restart = _systemctl("restart", unit)
    if restart.returncode == 0 and _systemctl("is-active", "--quiet", unit).returncode == 0:
        for _, backup in kept:
            if backup:
                backup.unlink()
        return {"switched": True, "drain": drained}
    journal = _journal(unit)
    _restore(kept, moves)
    _systemctl("daemon-reload")
    restored = _systemctl("restart", unit).returncode == 0 if was_active else None
    return {"switched": False, "rolled_back": True, "previous_restarted": restored, "drain": drained,
            "reason": restart.stderr.strip() or "the unit did not stay active", "journal": journal}


def _restore(kept: list[tuple[Path, Path | None]], moves: list[tuple[Path, Path]]) -> None:
    """Undo a switch: moved models go back to their staging names, previous files return."""
    for staged, final in moves:
        if final.exists() and any(f == final for f, _ in kept):
            final.replace(staged)
    for final, backup in kept:
        if backup:
            backup.replace(final)
        else:
            final.unlink(missing_ok=True)
