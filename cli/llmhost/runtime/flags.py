"""Server command lines rendered from `llmhost plan`'s settings: one renderer per server, and a check
of every flag, whole, against the installed server's --help.

`plan` decides numbers (layers on the GPU, context, slots, threads, KV type); these functions only
spell them for a server. Overrides (inference_flags) name a flag by any of its spellings ('c',
'-c', 'ctx-size'); None or False removes a flag, True gives it without a value.
"""

from __future__ import annotations

import re
from typing import Any

from llmhost import knowledge
from llmhost.errors import LlmhostError

Args = list[list[str]]
_OPTION_LINE = re.compile(r"^\s{0,8}((?:-{1,2}[A-Za-z0-9][\w.+-]*)(?:,\s*-{1,2}[A-Za-z0-9][\w.+-]*)*)")
_FLAG = re.compile(r"-{1,2}[A-Za-z0-9][\w.+-]*")


def help_aliases(help_text: str) -> dict[str, str]:
    """llama-server --help -> every spelling of every option mapped to its long name
    ('-c' -> '--ctx-size', '--n-gpu-layers' -> '--gpu-layers'); a '--no-X' spelling stays itself."""
    aliases: dict[str, str] = {}
    for line in help_text.splitlines():
        match = _OPTION_LINE.match(line)
        if not match:
            continue
        names = _FLAG.findall(match.group(1))
        positive = [n for n in names if not n.startswith(("--no-", "-no-"))]
        long = next((n for n in positive if n.startswith("--")), positive[0] if positive else names[0])
        for name in names:
            aliases[name] = name if name.startswith(("--no-", "-no-")) else long
    return aliases


def _override_name(key: str, aliases: dict[str, str] | None) -> str:
    bare = str(key).lstrip("-")
    if not bare:
        raise LlmhostError(f"inference_flags key {key!r} is not a flag name: expected e.g. ctx-size or -c")
    spellings = [f"--{bare}", f"-{bare}"]
    for spelling in spellings:
        if aliases and spelling in aliases:
            return aliases[spelling]
    return spellings[0] if len(bare) > 3 else spellings[1]  # not in the help: the check names it


def apply_overrides(args: Args, overrides: dict[str, Any] | None, aliases: dict[str, str] | None) -> Args:
    """Planned [[flag, value], ...] + inference_flags -> the final list; an override replaces the
    planned value of the same option, whatever spelling either uses."""
    canonical = (lambda flag: aliases.get(flag, flag)) if aliases else (lambda flag: flag)
    result = [list(pair) for pair in args]
    for key, value in (overrides or {}).items():
        name = _override_name(key, aliases)
        result = [pair for pair in result if canonical(pair[0]) != name]
        if value is None or value is False:
            continue
        result.append([name] if value is True else [name, str(value)])
    return result


def check_known(args: Args, aliases: dict[str, str], server: str) -> None:
    unknown = [pair[0] for pair in args if pair[0] not in aliases]
    if unknown:
        raise LlmhostError(f"{server} does not know {', '.join(unknown)}: fix inference_flags (or the server's "
                           "source or version)")


def _given(pairs: list[tuple[str, Any]]) -> Args:
    """Where a server listens and what it serves: the flags whose value was given."""
    return [[flag, str(value)] for flag, value in pairs if value]


def chat_template_for(arch: str | None, has_template: bool) -> str | None:
    """A built-in template for a GGUF that carries none (llama-server would fall back to chatml)."""
    if has_template:
        return None
    return knowledge.load("runtimes")["chat_templates_by_arch"].get(arch or "")


def llama_server(settings: dict[str, Any], *, model: str | None = None, alias: str | None = None,
                 host: str | None = None, port: int | None = None, api_key_file: str | None = None,
                 load_mode: str = "auto", numa_pinned: bool = False, chat_template: str | None = None,
                 overrides: dict[str, Any] | None = None, help_text: str | None = None,
                 server: str = "llama-server") -> Args:
    """plan settings -> llama-server's [[flag, value], ...].

    load_mode: auto (mmap), mlock (keep the weights in RAM: needs LimitMEMLOCK), none (read, no mmap).
    numa_pinned: the unit carries a CPU and memory policy (CPUAffinity=, NUMAPolicy=); llama.cpp then
    takes its CPU map from the process (numactl) instead of spreading over every node (distribute).
    help_text: the installed binary's --help; with it, spellings are resolved and every flag checked.
    """
    args = _given([("--model", model), ("--alias", alias), ("--host", host), ("--port", port)])
    if settings.get("gpu_layers") is not None:
        args.append(["--gpu-layers", str(settings["gpu_layers"])])
    args += [["--ctx-size", str(settings["context_per_slot"] * settings["slots"])],
             ["--parallel", str(settings["slots"])],
             ["--cache-type-k", settings["kv_type"]], ["--cache-type-v", settings["kv_type"]],
             ["--flash-attn", settings["flash_attn"]],
             ["--threads", str(settings["threads"])], ["--threads-batch", str(settings["threads_batch"])],
             ["--batch-size", str(settings["batch"])], ["--ubatch-size", str(settings["ubatch"])]]
    if settings.get("split_mode"):
        args.append(["--split-mode", settings["split_mode"]])
    if settings.get("cpu_moe_layers"):
        # The routed experts of the first N layers stay in host memory; attention and shared weights go to VRAM.
        args.append(["--n-cpu-moe", str(settings["cpu_moe_layers"])])
    if settings.get("numa_nodes", 1) > 1 or numa_pinned:
        args.append(["--numa", "numactl" if numa_pinned else "distribute"])
    if chat_template:
        # A built-in template is taken by name only outside the jinja engine (on by default in newer builds).
        if help_text is None or "--no-jinja" in help_text:
            args.append(["--no-jinja"])
        args.append(["--chat-template", chat_template])
    if model:  # serving, not printing a plan
        args.append(["--metrics"])
        if api_key_file:
            args.append(["--api-key-file", api_key_file])
        args += _load_mode(load_mode, help_text)
    aliases = help_aliases(help_text) if help_text else None
    args = apply_overrides(args, overrides, aliases)
    if aliases is not None:
        check_known(args, aliases, server)
    return args


def _load_mode(mode: str, help_text: str | None) -> Args:
    """Newer llama.cpp has --load-mode; older builds --mlock and --no-mmap: spell what the binary has."""
    if mode not in ("auto", "mlock", "none"):
        raise LlmhostError(f"load mode {mode!r} is not valid: expected auto, mlock or none")
    if mode == "auto":
        return []
    if help_text is None or "--load-mode" in help_text:
        return [["--load-mode", "mmap+mlock" if mode == "mlock" else "none"]]
    return [["--mlock"]] if mode == "mlock" else [["--no-mmap"]]


def vllm(settings: dict[str, Any], *, alias: str | None = None, host: str | None = None,
         port: int | None = None, tokenizer: str | None = None, overrides: dict[str, Any] | None = None,
         help_text: str | None = None, server: str = "vllm") -> Args:
    """plan settings -> `vllm serve MODEL` flags. The API key reaches vLLM as VLLM_API_KEY from the
    unit's environment file, never on the command line."""
    args = _given([("--served-model-name", alias), ("--host", host), ("--port", port)])
    args += [["--tensor-parallel-size", str(settings["tensor_parallel"])],
             ["--max-model-len", str(settings["context_per_slot"])],
             ["--gpu-memory-utilization", str(settings["gpu_memory_utilization"])],
             ["--kv-cache-dtype", "auto" if settings["kv_type"] in ("f16", "bf16") else "fp8"],
             ["--max-num-seqs", str(settings["slots"])]]
    if settings.get("cpu_offload_gib"):
        args.append(["--cpu-offload-gb", str(settings["cpu_offload_gib"])])
    if tokenizer:
        args.append(["--tokenizer", tokenizer])
    known = None
    if help_text:
        known = {name: name for name in re.findall(r"--[A-Za-z0-9][\w.-]*", help_text)}
    args = apply_overrides(args, overrides, known)
    if known is not None:
        check_known(args, known, server)
    return args


def as_argv(args: Args) -> list[str]:
    return [part for pair in args for part in pair]


_SHARD = re.compile(r"-\d{5}-of-\d{5}$")


def model_alias(name: str) -> str:
    """A model file or directory name -> the name clients ask for: 'Qwen3-8B-Q4_K_M-00001-of-00002.gguf'
    -> 'Qwen3-8B-Q4_K_M'."""
    base = str(name).rstrip("/").rsplit("/", 1)[-1]
    base = base[:-5] if base.lower().endswith(".gguf") else base
    alias = _SHARD.sub("", base)
    if not alias:
        raise LlmhostError(f"model name {name!r} gives no alias: set inference_model_alias")
    return alias


def exec_line(argv: list[str]) -> str:
    """argv -> a systemd ExecStart= value: % and $ are literal, arguments with spaces or quotes quoted."""
    words = []
    for arg in argv:
        text = str(arg).replace("%", "%%").replace("$", "$$")
        if not text or re.search(r"[\s\"'\\;]", text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(text)
    return " ".join(words)
