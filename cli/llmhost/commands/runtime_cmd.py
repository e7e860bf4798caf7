"""`llmhost runtime`: build llama.cpp's server into an artefact, prove it, and switch a serving host
to it safely. The inference role runs these on the controller (build) and on hosts (the rest)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from llmhost.errors import LlmhostError
from llmhost.runtime import artefact, hf, serve


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise LlmhostError(f"{what} {path!r} is not a readable JSON file: {exc}") from None


def _api_key(path: str | None) -> str | None:
    if not path:
        return None
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None  # nothing serves with a key yet
    except OSError as exc:
        raise LlmhostError(f"--api-key-file {path!r} cannot be read: {exc.strerror}") from None
    # llama-server's key file holds one key per line; vLLM's environment file VLLM_API_KEY=KEY.
    first = text.splitlines()[0] if text else ""
    return first.removeprefix("VLLM_API_KEY=") or None


def _exists(pid: int) -> bool:
    """Whether a process is there; a sandboxed unit may not see it in /proc (ProtectProc, PrivateUsers),
    but a signal-0 probe answers 'gone' (ESRCH) or 'there, not yours' (EPERM) across user namespaces."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@click.group()
def runtime():
    """Build, prove and switch llama.cpp's own llama-server (and vLLM units)."""


@runtime.command()
@click.option("--backend", type=click.Choice(artefact.BACKENDS), default="cpu", show_default=True)
@click.option("--source", default=lambda: artefact.data()["source"]["url"], show_default="the pinned sdist",
              help="llama.cpp source: a URL or .tar.gz (with --sha256), or a source directory.")
@click.option("--sha256", default=lambda: artefact.data()["source"]["sha256"], show_default="the pinned one")
@click.option("--cpu-variants", default=lambda: ",".join(artefact.data()["cpu_variants_default"]),
              show_default=True, help="Faster CPU backends to build beside the portable one ('none' for none).")
@click.option("--cuda-archs", default="", help="CUDA backend: CMake architectures, e.g. 90 or 89;90.")
@click.option("--nvcc", default="", help="CUDA backend: the nvcc to build with.")
@click.option("--host-cxx", default="", help="CUDA backend: nvcc's host compiler (e.g. g++-11).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), envvar="LLMHOST_ARTEFACTS",
              default=lambda: str(Path.home() / ".cache" / "llmhost" / "artefacts"), show_default="~/.cache/llmhost/artefacts")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel compile jobs (default: all CPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest instead of the path.")
def build(backend, source, sha256, cpu_variants, cuda_archs, nvcc, host_cxx, cache_dir, jobs, as_json):
    """Build llama-server and llama-bench from a pinned llama.cpp source, once per build kind; print
    the artefact's path (a cached one when the same build exists)."""
    variants = [] if cpu_variants == "none" else [v.strip() for v in cpu_variants.split(",") if v.strip()]
    spec = artefact.BuildSpec(backend, variants, [a for a in cuda_archs.split(";") if a], nvcc, host_cxx)
    tarball, manifest = artefact.build(spec, source, sha256, Path(cache_dir), jobs,
                                       log=lambda line: click.echo(f"llmhost: {line}", err=True))
    click.echo(json.dumps(manifest, indent=2) if as_json else str(tarball))


@runtime.command()
@click.argument("url")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=600, show_default=True)
@click.option("--pid", type=int, help="Give up as soon as this process (the server: systemd's $MAINPID) is gone.")
def ready(url, timeout, pid):
    """Wait until URL (a server's /health) answers 200; exit 1 when it does not within --timeout."""
    alive = (lambda: _exists(pid)) if pid else (lambda: True)
    try:
        waited = serve.wait_ready(url, timeout, alive=alive)
    except LlmhostError as exc:
        click.echo(f"llmhost: {exc}", err=True)
        sys.exit(1)
    click.echo(f"llmhost: {url} ready after {waited:.1f} s")


@runtime.command()
@click.argument("base_url")
@click.option("--timeout", type=click.FloatRange(min=0), default=120, show_default=True)
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="The server's key, if it needs one.")
def drain(base_url, timeout, api_key_file):
    """Wait until the server at BASE_URL has no request in flight (its /metrics); exit 1 if some remain."""
    result = serve.drain(base_url, timeout, _api_key(api_key_file))
    click.echo(json.dumps(result))
    sys.exit(0 if result["drained"] else 1)


@runtime.command()
@click.argument("install_dir", type=click.Path(file_okay=False))
@click.option("--model", required=True, type=click.Path(dir_okay=False))
@click.option("--args-json", required=True, type=click.Path(dir_okay=False),
              help="The candidate's flags, [[flag, value], ...] as the role rendered them.")
@click.option("--user", help="Run the proof as this user (the service's).")
@click.option("--cpu-only", is_flag=True, help="Keep the layers off the GPU (it is busy serving).")
@click.option("--variants", help="CPU variants to try, in order (default: those the CPU claims, best first).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
def prove(install_dir, model, args_json, user, cpu_only, variants, timeout):
    """Prove an installed llama.cpp artefact with this model and flags by a real decode on a free
    loopback port (JSON result); exit 1 when no build variant decodes."""
    args = _read_json(args_json, "--args-json")
    if not isinstance(args, list) or not all(isinstance(p, list) and p and all(isinstance(x, str) for x in p)
                                             for p in args):
        raise LlmhostError(f"--args-json {args_json!r} must hold [[flag, value], ...] of strings")
    if user and os.geteuid() != 0:
        raise LlmhostError(f"--user {user} needs root")
    chosen = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    result = serve.prove(Path(install_dir), model, args, timeout=timeout, user=user, cpu_only=cpu_only, variants=chosen)
    click.echo(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


def _pairs(items: tuple[str, ...], option: str) -> list[tuple[Path, Path]]:
    pairs = []
    for item in items:
        staged, sep, final = item.partition(":")
        if not sep or not staged or not final:
            raise LlmhostError(f"{option} {item!r} is not STAGED:FINAL")
        if not Path(staged).is_file():
            raise LlmhostError(f"{option} {item!r}: {staged} is not a file")
        pairs.append((Path(staged), Path(final)))
    return pairs


@runtime.command()
@click.option("--unit", required=True, help="The systemd unit, e.g. llmhost-inference.service.")
@click.option("--copy", "copies", multiple=True, metavar="STAGED:FINAL",
              help="A small file to copy into place: the unit file, its key (repeatable).")
@click.option("--move", "moves", multiple=True, metavar="STAGED:FINAL",
              help="A checked model to rename into place (repeatable).")
@click.option("--url", "base_url", required=True, help="The server's base URL (for draining).")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=120, show_default=True)
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="The running server's key, if any.")
def switch(unit, copies, moves, base_url, drain_timeout, api_key_file):
    """Drain, keep the previous files, put the staged ones in place, restart; roll back if the new
    unit does not become ready (JSON result; exit 1 after a rollback)."""
    result = serve.switch(unit, _pairs(copies, "--copy"), _pairs(moves, "--move"), base_url, drain_timeout,
                          _api_key(api_key_file))
    click.echo(json.dumps(result))
    sys.exit(0 if result["switched"] else 1)


@runtime.command("hf-check")
@click.argument("directory")
def hf_check(directory):
    """Check a Hugging Face model directory (config.json + safetensors) that vLLM is to serve (JSON)."""
    click.echo(json.dumps(hf.check(directory)))
