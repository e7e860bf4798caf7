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


BUILDS = ("auto", "cpu", "cuda")


def llama_cpp_build(build: str, gpu_count: int, compute_caps: list[str], arch: str | None = None,
                    cuda: dict[str, Any] | None = None, architectures: str = "") -> dict[str, Any]:
    """How the inference role builds llama-cpp-python on this host.

    build: inference_llama_build (auto: CUDA where there is an NVIDIA GPU, CPU elsewhere);
    compute_caps: nvidia-smi's compute_cap column ('9.0'), empty before the driver is loaded;
    arch: the GPUs' architecture from their PCI ids (its compute capabilities are the fallback);
    cuda: the cuda_toolkit role's local fact ({'nvcc': ..., 'default': '12.4'});
    architectures: inference_cuda_architectures, CMake's list (e.g. '90;89'), overriding the rest.
    Returns {kind, marker, env, pip_args}: the marker names the build so a change rebuilds it.
    """
    if build not in BUILDS:
        raise LlmhostError(f"inference_llama_build {build!r} is not valid: expected {', '.join(BUILDS)}")
    kind = build if build != "auto" else ("cuda" if gpu_count > 0 else "cpu")
    if kind == "cpu":
        return {"kind": "cpu", "marker": "cpu", "env": {}, "pip_args": ""}
    if not cuda or not cuda.get("nvcc"):
        raise LlmhostError(f"inference_llama_build {build}: the host has {gpu_count} NVIDIA GPU(s) but no CUDA "
                           "toolkit (ansible_local.llmhost_cuda): run the cuda_toolkit role first, or set "
                           "inference_llama_build=cpu to serve from the CPU")
    if architectures:
        if not all(part.isascii() and part.replace("-real", "").replace("-virtual", "").isdigit()
                   for part in architectures.split(";")):
            raise LlmhostError(f"inference_cuda_architectures {architectures!r} is not valid: expected CMake's list, "
                               "e.g. '90' or '89;90'")
        archs = architectures.split(";")
    else:
        caps = [c.strip() for c in compute_caps if c.strip()] or (
            knowledge.architecture(arch)["compute_capability"] if arch else [])
        if not caps:
            raise LlmhostError("inference_llama_build cuda: no GPU to read compute capabilities from: set "
                               "inference_cuda_architectures (e.g. '90')")
        archs = sorted({c.replace(".", "") for c in caps}, key=int)
    cmake = f"-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)} -DGGML_NATIVE=OFF"
    env = {"CMAKE_ARGS": cmake, "CUDACXX": cuda["nvcc"]}
    if cuda.get("host_compiler"):
        env["CUDAHOSTCXX"] = cuda["host_compiler"]  # CMake's variable for nvcc's -ccbin
    return {"kind": "cuda", "marker": f"cuda {cuda.get('default', '')} sm {';'.join(archs)}", "env": env,
            # The PyPI wheel is CPU-only: build from the source distribution.
            "pip_args": "--no-binary llama-cpp-python"}
