"""Turn `llmhost plan`'s llama-server flags into the settings of the server a role installs.

llama.cpp's own `llama-server` and llama-cpp-python's `python -m llama_cpp.server` take the same
knobs under different names; the role checks the result against the installed server's --help.
"""

from __future__ import annotations

from typing import Any

from llmhost import knowledge
from llmhost.errors import LlmhostError

# ggml type ids llama-cpp-python takes for --type_k / --type_v
GGML_TYPE_IDS = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8}


def llama_cpp_python_args(plan_flags: list[str], layers: int | None = None, mlock: bool = False,
                          overrides: dict[str, Any] | None = None, arch: str | None = None,
                          chat_template: bool = True) -> list[list[str]]:
    """['-ngl', '19', '-c', '8192', ...] -> [['--n_gpu_layers', '-1'], ['--n_ctx', '8192'], ...]"""
    if len(plan_flags) % 2 and plan_flags[-1].startswith("-"):
        raise LlmhostError(f"plan flags {plan_flags!r} end with a flag that has no value")
    pairs = dict(zip(plan_flags[::2], plan_flags[1::2]))
    # llama-cpp-python's server cuts off a streaming reply when another request arrives unless told
    # to queue: a shared server must queue.
    args: dict[str, str] = {"interrupt_requests": "false"}
    if "-ngl" in pairs:
        ngl = int(pairs["-ngl"])
        args["n_gpu_layers"] = "-1" if layers is not None and ngl > layers else str(ngl)
    if "-c" in pairs:
        args["n_ctx"] = pairs["-c"]
    if "-t" in pairs:
        args["n_threads"] = args["n_threads_batch"] = pairs["-t"]
    for flag, name in (("-ctk", "type_k"), ("-ctv", "type_v")):
        kind = pairs.get(flag, "f16")
        if kind not in GGML_TYPE_IDS:
            raise LlmhostError(f"KV cache type {kind!r} is not one llama-cpp-python takes: expected {', '.join(GGML_TYPE_IDS)}")
        if kind != "f16":
            args[name] = str(GGML_TYPE_IDS[kind])
    if pairs.get("-fa") == "on":
        args["flash_attn"] = "true"
    if "--numa" in plan_flags:
        args["numa"] = "true"
    if mlock:
        args["use_mlock"] = "true"
    chat_format = knowledge.load("runtimes")["chat_formats_by_arch"].get(arch or "")
    if not chat_template and chat_format:
        args["chat_format"] = chat_format
    for key, value in (overrides or {}).items():
        args[str(key).lstrip("-")] = str(value).lower() if isinstance(value, bool) else str(value)
    return [[f"--{key}", value] for key, value in args.items()]
