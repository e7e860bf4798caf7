"""`llmhost plan`: will this model fit on this hardware, and with which runtime flags.

Weights are sized tensor by tensor: exactly from a GGUF header, or from an architecture shape with
llama.cpp's per-tensor quantization rules (data/sizing.yml), or, with only a parameter count, from
measured bits per weight. KV cache = 2 x layers x kv_heads x head_dim x context x parallel x bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmhost import knowledge
from llmhost.plan import gguf_header
from llmhost.errors import LlmhostError
from llmhost.host.parsers import is_number
from llmhost.runtime import flags

GIB = 1 << 30
MIB = 1 << 20


def _quant_sizes() -> dict[str, tuple[int, int]]:
    return {name: (block, size) for name, block, size in gguf_header.ggml_types().values()}


def type_bytes(type_name: str, n_elements: int) -> int:
    sizes = _quant_sizes()
    if type_name.upper() not in sizes:
        raise LlmhostError(f"tensor type {type_name!r} is unknown: expected one of {', '.join(sorted(sizes))}")
    block, size = sizes[type_name.upper()]
    return math.ceil(n_elements / block) * size


@dataclass
class Shape:
    arch: str
    layers: int
    hidden: int
    ff: int
    heads: int
    kv_heads: float
    head_dim: int
    vocab: int
    tied: bool = False
    qkv_bias: bool = False
    context: int | None = None
    head_dim_v: int | None = None

    @property
    def params(self) -> int:
        return sum(n for _, _, _, n in tensors(self))


def shape_from_model(name: str) -> Shape:
    models = knowledge.load("models")["models"]
    if name not in models:
        raise LlmhostError(f"model {name!r} is unknown: expected one of {', '.join(models)} (or --params, or a .gguf)")
    row = models[name]
    return Shape(row["arch"], row["layers"], row["hidden"], row["ff"], row["heads"], row["kv_heads"], row["head_dim"],
                 row["vocab"], row.get("tied", False), row.get("qkv_bias", False), row.get("context"))


def tensors(shape: Shape) -> list[tuple[str, int | None, int, int]]:
    """(kind, layer, ne0 = row length, n_elements) for a llama-style decoder."""
    q_dim, kv_dim = shape.heads * shape.head_dim, int(shape.kv_heads * shape.head_dim)
    out = [("token_embd", None, shape.hidden, shape.hidden * shape.vocab), ("norm", None, shape.hidden, shape.hidden)]
    if not shape.tied:
        out.append(("output", None, shape.hidden, shape.hidden * shape.vocab))
    for i in range(shape.layers):
        out += [("attn_q", i, shape.hidden, shape.hidden * q_dim), ("attn_k", i, shape.hidden, shape.hidden * kv_dim),
                ("attn_v", i, shape.hidden, shape.hidden * kv_dim), ("attn_output", i, q_dim, q_dim * shape.hidden),
                ("ffn_gate", i, shape.hidden, shape.hidden * shape.ff), ("ffn_up", i, shape.hidden, shape.hidden * shape.ff),
                ("ffn_down", i, shape.ff, shape.ff * shape.hidden), ("norm", i, shape.hidden, 2 * shape.hidden)]
        if shape.qkv_bias:
            out.append(("norm", i, q_dim, q_dim + 2 * kv_dim))
    return out


def _use_more_bits(i: int, n: int) -> bool:
    # llama.cpp: the first and last eighth of the layers, and every third layer in between.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_type(kind: str, layer: int | None, ne0: int, shape: Shape, quant: str) -> str:
    sizing = knowledge.load("sizing")
    preset = sizing["presets"][quant]
    if kind == "norm":
        return "F32"
    if kind == "output" or (kind == "token_embd" and shape.tied):
        chosen = preset["output"]
    elif kind in ("attn_v", "ffn_down") and "more_bits" in preset and _use_more_bits(layer, shape.layers):
        chosen = preset["more_bits"]
    elif kind == "attn_v" and "attn_v_70b" in preset and shape.layers == 80:
        chosen = preset["attn_v_70b"]  # llama.cpp's LLM_TYPE_70B: 8 heads share attn_v, give it more bits
    else:
        chosen = preset["base"]
    block, _ = _quant_sizes()[chosen]
    if ne0 % block:
        chosen = sizing["fallback"].get(chosen, chosen)
    return chosen


def weights_by_shape(shape: Shape, quant: str) -> dict[str, int]:
    """{'total', 'per_layer', 'token_embd', 'output'} bytes."""
    presets = knowledge.load("sizing")["presets"]
    if quant not in presets:
        raise LlmhostError(f"--quant {quant!r} is not known: expected one of {', '.join(presets)}")
    per_layer = [0] * shape.layers
    embd = output = 0
    for kind, layer, ne0, n in tensors(shape):
        size = type_bytes(tensor_type(kind, layer, ne0, shape, quant), n)
        if layer is not None:
            per_layer[layer] += size
        elif kind == "token_embd":
            embd += size
        else:
            output += size
    return {"total": sum(per_layer) + embd + output, "per_layer": max(per_layer), "token_embd": embd, "output": output}


def weights_by_gguf(header: dict[str, Any]) -> dict[str, int]:
    per_layer: dict[int, int] = {}
    embd = output = 0
    for name, _, size, _ in header["tensors"]:
        parts = name.split(".")
        if parts[0] == "blk" and len(parts) > 1 and is_number(parts[1]):
            per_layer[int(parts[1])] = per_layer.get(int(parts[1]), 0) + size
        elif parts[0] == "token_embd":
            embd += size
        else:
            output += size
    return {"total": header["weight_bytes"], "per_layer": max(per_layer.values(), default=0), "token_embd": embd,
            "output": output}


def kv_bytes(layers: int, kv_heads: float, head_dim_k: int, head_dim_v: int, context: int, parallel: int,
             kv_type: str) -> int:
    if kv_type.lower() not in knowledge.load("sizing")["kv_types"]:
        raise LlmhostError(f"--kv-type {kv_type!r} is not valid: expected f16, q8_0 or q4_0")
    elements = layers * kv_heads * (head_dim_k + head_dim_v) * context * parallel
    return type_bytes(kv_type, int(elements))


@dataclass
class Hardware:
    gpus: list[int] = field(default_factory=list)  # bytes of VRAM each
    ram: int | None = None
    cpus: int | None = None     # logical CPUs the server may use
    numa_nodes: int = 1
    cores: int | None = None    # physical cores among them (decode is memory-bound: one thread per core)
    source: str = "given"


def plan(model: dict[str, Any], hw: Hardware, context: int, parallel: int, kv_type: str) -> dict[str, Any]:
    """model: {'source', 'weights': weights_by_*, 'layers', 'kv_heads', 'head_dim', 'head_dim_v', 'vocab',
    'heads', 'file_bytes', 'exact'}"""
    if context <= 0 or parallel <= 0:
        raise LlmhostError(f"--ctx {context} and --parallel {parallel} must be positive")
    sizing = knowledge.load("sizing")["overhead"]
    weights = model["weights"]
    layers = model["layers"]
    kv_total = kv_bytes(layers, model["kv_heads"], model["head_dim"], model["head_dim_v"], context, parallel, kv_type)
    kv_layer = kv_total // layers
    # Worst case of llama.cpp's compute buffer: one f32 logits row per micro-batch token.
    compute = knowledge.load("runtimes")["llama_server"]["ubatch"] * (model["vocab"] or 32000) * 4
    overhead = sizing["per_gpu_mib"] * MIB
    per_layer = weights["per_layer"] + kv_layer
    gpu_fixed = weights["output"] + compute  # token_embd stays in host memory in llama.cpp
    usable = sorted((int(g * sizing["vram_usable_ratio"]) for g in hw.gpus), reverse=True)

    fit: dict[str, Any]
    need_all = layers * per_layer + gpu_fixed
    if not usable:
        fit = {"verdict": "cpu-only", "gpus_needed": 0, "gpu_layers": 0}
    elif need_all + overhead <= usable[0]:
        fit = {"verdict": "fits", "gpus_needed": 1, "gpu_layers": layers}
    else:
        n = next((k for k in range(2, len(usable) + 1) if need_all + k * overhead <= sum(usable[:k])), None)
        if n:
            fit = {"verdict": "fits-multi-gpu", "gpus_needed": n, "gpu_layers": layers}
        else:
            room = sum(usable) - len(usable) * overhead - gpu_fixed
            ngl = max(0, min(layers, room // per_layer)) if per_layer else 0
            fit = {"verdict": "partial-offload" if ngl else "does-not-fit-vram", "gpus_needed": len(usable),
                   "gpu_layers": int(ngl)}
    cpu_layers = layers - fit["gpu_layers"]
    cpu_bytes = weights["token_embd"] + cpu_layers * per_layer + (0 if fit["gpu_layers"] == layers else weights["output"])
    ram_needed = cpu_bytes + GIB
    fit["vram_needed"] = need_all + overhead * max(1, fit["gpus_needed"]) if usable else 0
    fit["ram_ok"] = hw.ram is None or hw.ram >= ram_needed
    return {
        "model": {k: v for k, v in model.items() if k not in ("weights",)},
        "context": context, "parallel": parallel, "kv_type": kv_type,
        "bytes": {"weights": weights["total"], "kv_cache": kv_total, "compute": compute,
                  "overhead_per_gpu": overhead if usable else 0, "per_layer": per_layer},
        "fit": fit,
        "host": {"gpus": hw.gpus, "ram": hw.ram, "cpus": hw.cpus, "numa_nodes": hw.numa_nodes, "source": hw.source},
        "ram_needed": ram_needed,
        "hugepages_2m": math.ceil(cpu_bytes / (2 * MIB)),
        "disk_needed": int((model.get("file_bytes") or weights["total"]) * knowledge.thresholds()["storage"]["free_space_margin"]),
        "runtime": runtimes(model, hw, fit, context, parallel, kv_type),
    }


def _tensor_parallel(heads: int | None, needed: int, available: int) -> int | None:
    size = 1
    while size < needed:
        size *= 2
    while size <= available:
        if not heads or heads % size == 0:
            return size
        size *= 2
    return None


def runtimes(model: dict[str, Any], hw: Hardware, fit: dict[str, Any], context: int, parallel: int,
             kv_type: str) -> dict[str, Any]:
    """The servers' settings for this plan (numbers only), and each server's flags rendered from them."""
    server = knowledge.load("runtimes")["llama_server"]
    full = fit["gpu_layers"] == model["layers"]
    tp = _tensor_parallel(model.get("heads"), max(1, fit["gpus_needed"]), len(hw.gpus)) if hw.gpus else None
    settings = {
        # No GPU: no -ngl at all (a CPU build warns about it); all layers: 'all' (the output layer too).
        "gpu_layers": None if not hw.gpus else ("all" if full else fit["gpu_layers"]),
        "layers": model["layers"], "context_per_slot": context, "slots": parallel, "kv_type": kv_type,
        # a quantized V cache needs flash attention in llama.cpp
        "flash_attn": "on" if kv_type != "f16" else "auto",
        "threads": hw.cores or hw.cpus or 4, "threads_batch": hw.cpus or hw.cores or 4,
        "batch": server["batch"], "ubatch": server["ubatch"],
        "split_mode": "layer" if fit["gpus_needed"] > 1 else None, "numa_nodes": hw.numa_nodes,
        "tensor_parallel": tp,
        "gpu_memory_utilization": knowledge.load("sizing")["overhead"]["vllm_gpu_memory_utilization"],
    }
    template = flags.chat_template_for(model.get("arch"), model.get("chat_template", True))
    result: dict[str, Any] = {"settings": settings,
                              "llama_cpp": {"flags": flags.as_argv(flags.llama_server(settings, chat_template=template))}}
    recommended = "llama.cpp"
    if tp and fit["verdict"] in ("fits", "fits-multi-gpu"):
        result["vllm"] = {"flags": flags.as_argv(flags.vllm(settings))}
        if fit["gpus_needed"] > 1 and model["source"] != "gguf":
            recommended = "vllm"
    result["recommended"] = recommended
    return result
