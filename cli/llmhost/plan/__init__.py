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
    sliding_window: int | None = None
    # Mixture of experts: routed experts per layer, how many a token uses, their width, shared experts,
    # and the leading layers that stay dense (DeepSeek's first_k_dense_replace).
    experts: int = 0
    experts_used: int = 0
    expert_ff: int = 0
    shared_experts: int = 0
    dense_layers: int = 0
    # Multi-head latent attention (DeepSeek): the compressed KV and Q ranks and the rope/no-rope head split.
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    rope_dim: int = 0
    nope_dim: int = 0

    @property
    def params(self) -> int:
        return sum(n for _, _, _, n in tensors(self))

    @property
    def active_params(self) -> int:
        """Parameters one token uses: all but the routed experts it does not pick."""
        share = self.experts_used / self.experts if self.experts else 1.0
        return int(sum(n * (share if kind.endswith("_exps") else 1) for kind, _, _, n in tensors(self)))


def shape_from_model(name: str) -> Shape:
    models = knowledge.load("models")["models"]
    if name not in models:
        raise LlmhostError(f"model {name!r} is unknown: expected one of {', '.join(models)} (or --params, or a .gguf)")
    row = models[name]
    return Shape(row["arch"], row["layers"], row["hidden"], row["ff"], row["heads"], row["kv_heads"], row["head_dim"],
                 row["vocab"], row.get("tied", False), row.get("qkv_bias", False), row.get("context"),
                 sliding_window=row.get("sliding_window"),
                 **{k: row[k] for k in ("experts", "experts_used", "expert_ff", "shared_experts", "dense_layers",
                                        "kv_lora_rank", "q_lora_rank", "rope_dim", "nope_dim") if k in row})


def tensors(shape: Shape) -> list[tuple[str, int | None, int, int]]:
    """(kind, layer, ne0 = row length, n_elements) for a decoder: llama-style attention or MLA, a dense
    feed-forward or routed plus shared experts."""
    h = shape.hidden
    q_dim, kv_dim = shape.heads * shape.head_dim, int(shape.kv_heads * shape.head_dim)
    out = [("token_embd", None, h, h * shape.vocab), ("norm", None, h, h)]
    if not shape.tied:
        out.append(("output", None, h, h * shape.vocab))
    for i in range(shape.layers):
        if shape.kv_lora_rank:
            qk = shape.heads * (shape.nope_dim + shape.rope_dim)
            v_dim = shape.head_dim_v or shape.head_dim
            out += ([("attn_q_a", i, h, h * shape.q_lora_rank), ("attn_q_b", i, shape.q_lora_rank, shape.q_lora_rank * qk)]
                    if shape.q_lora_rank else [("attn_q", i, h, h * qk)])
            out += [("attn_kv_a_mqa", i, h, h * (shape.kv_lora_rank + shape.rope_dim)),
                    ("attn_kv_b", i, shape.kv_lora_rank, shape.kv_lora_rank * shape.heads * (shape.nope_dim + v_dim)),
                    ("attn_output", i, shape.heads * v_dim, shape.heads * v_dim * h),
                    ("norm", i, shape.kv_lora_rank, shape.kv_lora_rank + shape.q_lora_rank)]
        else:
            out += [("attn_q", i, h, h * q_dim), ("attn_k", i, h, h * kv_dim), ("attn_v", i, h, h * kv_dim),
                    ("attn_output", i, q_dim, q_dim * h)]
            if shape.qkv_bias:
                out.append(("norm", i, q_dim, q_dim + 2 * kv_dim))
        if shape.experts and i >= shape.dense_layers:
            e, ff = shape.experts, shape.expert_ff
            out += [("ffn_gate_inp", i, h, h * e), ("ffn_gate_exps", i, h, e * h * ff), ("ffn_up_exps", i, h, e * h * ff),
                    ("ffn_down_exps", i, ff, e * ff * h)]
            if shape.shared_experts:
                sff = ff * shape.shared_experts
                out += [("ffn_gate_shexp", i, h, h * sff), ("ffn_up_shexp", i, h, h * sff),
                        ("ffn_down_shexp", i, sff, sff * h)]
        else:
            out += [("ffn_gate", i, h, h * shape.ff), ("ffn_up", i, h, h * shape.ff), ("ffn_down", i, shape.ff, shape.ff * h)]
        out.append(("norm", i, h, 2 * h))
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
    elif kind.endswith("_exps") and "experts" in preset:
        chosen = preset["experts"]
    elif kind in ("attn_v", "ffn_down", "ffn_down_exps") and "more_bits" in preset and _use_more_bits(layer, shape.layers):
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
    experts = [0] * shape.layers
    embd = output = 0
    types: dict[str, list[int]] = {}
    for kind, layer, ne0, n in tensors(shape):
        type_name = tensor_type(kind, layer, ne0, shape, quant)
        size = type_bytes(type_name, n)
        if layer is not None:
            per_layer[layer] += size
            if kind.endswith("_exps"):
                experts[layer] += size
        elif kind == "token_embd":
            embd += size
        else:
            output += size
        if kind != "token_embd" or shape.tied:
            _count_type(types, type_name, size, 1 if kind.endswith("_exps") else 0 if layer is not None else 2)
    if shape.tied:
        output += embd  # llama.cpp duplicates a tied embedding as the output layer
    return {"total": sum(per_layer) + embd + output - (embd if shape.tied else 0), "layers_total": sum(per_layer),
            "per_layer": max(per_layer), "token_embd": embd, "output": output, "tied": shape.tied,
            "experts": sum(experts), "moe_layers": sum(1 for e in experts if e), "types": types}


def _count_type(types: dict[str, list[int]], type_name: str, size: int, slot: int) -> None:
    """types[type] = bytes a token reads of [the layers' dense tensors, routed experts, the output layer
    and norms outside the layers] (a prompt's tokens skip the output layer: only the last one is sampled)."""
    row = types.setdefault(type_name, [0, 0, 0])
    row[slot] += size


def weights_by_gguf(header: dict[str, Any]) -> dict[str, int]:
    """Bytes by where llama.cpp can place them: per layer (its largest), its routed experts (the
    *_exps tensors of a MoE layer, which --n-cpu-moe keeps in host memory), the token embedding (host
    memory) and the rest (output, norms)."""
    per_layer: dict[int, int] = {}
    experts: dict[int, int] = {}
    embd = output = 0
    types: dict[str, list[int]] = {}
    tied = not any(t[0] == "output.weight" for t in header["tensors"])
    for name, type_name, size, _ in header["tensors"]:
        parts = name.split(".")
        slot = 2
        if parts[0] == "blk" and len(parts) > 1 and is_number(parts[1]):
            layer = int(parts[1])
            per_layer[layer] = per_layer.get(layer, 0) + size
            slot = 0
            if len(parts) > 2 and parts[2].endswith("_exps"):
                experts[layer] = experts.get(layer, 0) + size
                slot = 1
        elif parts[0] == "token_embd":
            embd += size
        else:
            output += size
        if parts[0] != "token_embd" or tied:
            _count_type(types, str(type_name), size, slot)
    if tied:
        # Tied embeddings: llama.cpp duplicates token_embd as the output layer, which every token reads whole.
        output += embd
    return {"tied": tied, "total": header["weight_bytes"], "layers_total": sum(per_layer.values()), "per_layer": max(per_layer.values(), default=0), "token_embd": embd,
            "output": output, "experts": sum(experts.values()),
            "moe_layers": len(experts), "types": types}


def kv_bytes(layers: int, kv_heads: float, head_dim_k: int, head_dim_v: int, context: int, parallel: int,
             kv_type: str, swa_layers: int = 0, swa_window: int = 0, ubatch: int = 512) -> int:
    """llama.cpp's KV cache: every layer holds context x parallel cells, except sliding-window layers,
    which hold min(context, window + ubatch) cells per slot, padded to 256 (llama-kv-cache-iswa.cpp).
    An MLA model caches its compressed latent: head_dim_k = kv_lora_rank + rope dims, one head, no V."""
    if kv_type.lower() not in knowledge.load("sizing")["kv_types"]:
        raise LlmhostError(f"--kv-type {kv_type!r} is not valid: expected f16, q8_0 or q4_0")
    per_cell = kv_heads * (head_dim_k + head_dim_v)
    swa_layers = min(swa_layers, layers) if swa_window else 0
    swa_cells = -(-min(context, swa_window + ubatch) // 256) * 256 if swa_layers else 0
    elements = per_cell * ((layers - swa_layers) * context * parallel + swa_layers * min(swa_cells, context) * parallel)
    return type_bytes(kv_type, int(elements))


def compute_bytes(model: dict[str, Any], context: int) -> int:
    """llama.cpp's compute buffer for one micro-batch (f32): the feed-forward activations (gate, up and
    their product), a few hidden-size rows, the attention scores when they are materialised (no flash
    attention), and one logits row per sequence. Measured on Gemma 3 270M: 23.3 MiB reported, this says
    26 MiB. Without the feed-forward width (a --params plan) it falls back to the logits of a whole
    micro-batch, an upper bound."""
    ubatch = knowledge.load("runtimes")["llama_server"]["ubatch"]
    vocab = model.get("vocab") or 32000
    ff, hidden = model.get("ff"), model.get("hidden")
    if not ff or not hidden:
        return ubatch * vocab * 4
    if model.get("experts_used"):
        ff = max(ff, (model.get("expert_ff") or ff) * model["experts_used"])
    scores = ubatch * (model.get("heads") or 1) * context
    return 4 * (ubatch * (3 * ff + 4 * hidden) + scores + vocab)


def sliding_window(arch: str | None, layers: int, window: int | None) -> dict[str, int]:
    """{'swa_layers', 'swa_window'} for an architecture with sliding-window layers, else {}."""
    row = knowledge.load("sizing")["swa"].get(arch or "")
    if not row:
        return {}
    pattern = row["pattern"]
    swa_layers = sum(1 for i in range(layers) if i % pattern < pattern - 1)
    return {"swa_layers": swa_layers, "swa_window": window or row["window"]}


def kv_for(model: dict[str, Any], context: int, parallel: int, kv_type: str) -> int:
    ubatch = knowledge.load("runtimes")["llama_server"]["ubatch"]
    return kv_bytes(model["layers"], model["kv_heads"], model["head_dim"], model["head_dim_v"], context, parallel,
                    kv_type, model.get("swa_layers", 0), model.get("swa_window", 0), ubatch)


@dataclass
class Hardware:
    gpus: list[int] = field(default_factory=list)  # bytes of VRAM each
    ram: int | None = None
    cpus: int | None = None     # logical CPUs the server may use
    numa_nodes: int = 1
    cores: int | None = None    # physical cores among them (decode is memory-bound: one thread per core)
    source: str = "given"
    gpu_bandwidth: float | None = None   # bytes/s of one GPU's memory (the slowest, when several)
    gpu_bandwidth_source: str = ""
    cpu_bandwidth: float | None = None   # bytes/s of host memory read on every core
    cpu_bandwidth_source: str = ""
    cpu_rates: dict[str, float] | None = None   # bytes/s llama.cpp decodes per weight type (engine_rates)
    cpu_rates_source: str = ""
    cpu_prompt_flops: dict[str, float] | None = None   # operations/s of a prompt batch per weight type


def plan(model: dict[str, Any], hw: Hardware, context: int, parallel: int, kv_type: str) -> dict[str, Any]:
    """model: {'source', 'weights': weights_by_*, 'layers', 'kv_heads', 'head_dim', 'head_dim_v', 'vocab',
    'heads', 'file_bytes', 'exact'}"""
    if context <= 0 or parallel <= 0:
        raise LlmhostError(f"--ctx {context} and --parallel {parallel} must be positive")
    sizing = knowledge.load("sizing")["overhead"]
    weights = model["weights"]
    layers = model["layers"]
    kv_total = kv_for(model, context, parallel, kv_type)
    kv_layer = kv_total // layers
    compute = compute_bytes(model, context)
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
            fit = _experts_on_cpu(weights, layers, kv_total, gpu_fixed, usable, overhead)
            if fit is None:
                room = sum(usable) - len(usable) * overhead - gpu_fixed
                ngl = max(0, min(layers, room // per_layer)) if per_layer else 0
                fit = {"verdict": "partial-offload" if ngl else "does-not-fit-vram", "gpus_needed": len(usable),
                       "gpu_layers": int(ngl)}
    if fit["verdict"] in ("fits-experts-on-cpu", "partial-offload", "does-not-fit-vram"):
        offload = _vllm_cpu_offload(model.get("heads"), weights["total"] + kv_total + compute,
                                    sorted(hw.gpus, reverse=True), hw.ram, sizing)
        if offload:
            fit["vllm_tensor_parallel"], fit["vllm_cpu_offload_gib"] = offload
    cpu_layers = layers - fit["gpu_layers"]
    cpu_moe = fit.get("cpu_moe_layers", 0)
    cpu_bytes = weights["token_embd"] + cpu_layers * per_layer + (0 if fit["gpu_layers"] == layers else weights["output"]) \
        + cpu_moe * _experts_per_layer(weights)
    ram_needed = cpu_bytes + GIB
    gpu_weights = need_all if not cpu_moe else (weights["layers_total"] + kv_total + gpu_fixed)
    fit["vram_needed"] = (gpu_weights - cpu_moe * _experts_per_layer(weights)
                          + overhead * max(1, fit["gpus_needed"])) if usable else 0
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
        "speed": predict_speed(model, hw, fit, kv_total // max(1, context * parallel)),
        "warnings": ([f"--ctx {context} is beyond the {model['max_context']} tokens the model was trained for"]
                     if model.get("max_context") and context > model["max_context"] else []),
    }


def _experts_per_layer(weights: dict[str, int]) -> int:
    return weights.get("experts", 0) // max(1, weights.get("moe_layers", 0))


def _experts_on_cpu(weights: dict[str, int], layers: int, kv_total: int, gpu_fixed: int, usable: list[int],
                    overhead: int) -> dict[str, Any] | None:
    """A MoE model too big for VRAM: every layer's attention and shared weights on the GPU(s), and
    the routed experts of the first N layers in host memory (llama.cpp --n-cpu-moe N), N as small as
    VRAM allows; None when even the layers without their experts do not fit."""
    experts, moe_layers = weights.get("experts", 0), weights.get("moe_layers", 0)
    if not experts or not moe_layers:
        return None
    per_experts = experts / moe_layers
    dense_need = weights["layers_total"] - experts + kv_total + gpu_fixed
    for k in range(1, len(usable) + 1):
        room = sum(usable[:k]) - k * overhead
        if dense_need <= room:
            on_gpu = min(moe_layers, int((room - dense_need) // per_experts))
            return {"verdict": "fits-experts-on-cpu", "gpus_needed": k, "gpu_layers": layers,
                    "cpu_moe_layers": moe_layers - on_gpu}
    return None


def _vllm_cpu_offload(heads: int | None, need: int, gpus: list[int], ram: int | None,
                      sizing: dict[str, Any]) -> tuple[int, int] | None:
    """vLLM's answer to a model larger than VRAM: --cpu-offload-gb, GiB of weights per GPU kept in pinned
    host memory and copied to the GPU in every forward pass (whole layers, not only the experts a token
    uses). Returns (tensor parallel size over as many GPUs as the heads allow, GiB per GPU), or None
    when the host's RAM cannot hold the offloaded part. sizing: data/sizing.yml's overhead."""
    if not gpus:
        return None
    tp = 1
    while tp * 2 <= len(gpus) and (not heads or heads % (tp * 2) == 0):
        tp *= 2
    per_gpu = need / tp + sizing["per_gpu_mib"] * MIB - min(gpus[:tp]) * sizing["vllm_gpu_memory_utilization"]
    gib = max(1, math.ceil(per_gpu / GIB))
    if ram is not None and gib * GIB * tp > ram:
        return None
    return tp, gib


def predict_speed(model: dict[str, Any], hw: Hardware, fit: dict[str, Any], kv_per_token: int) -> dict[str, Any]:
    """Decode tokens/s of one request, as a ceiling and as a prediction.

    The ceiling: the bytes each token reads (the weights it uses, once, plus the KV cache so far) over
    the memory bandwidth where they sit; the GPU and CPU parts of a split add up. The prediction: what
    llama.cpp reaches of it. On a GPU, the published share of the data sheet's bandwidth plus a cost per
    layer (sizing.yml speed). On a CPU, llama.cpp's own rate for each weight type where it was measured
    on the host (plan --measure-engine: with few cores the kernels, not the memory, set the pace), else
    the published share of the bandwidth."""
    weights = model["weights"]
    layers = model["layers"]
    speed = knowledge.load("sizing")["speed"]
    used = model.get("experts_used") or 0
    total_experts = model.get("experts") or 0
    active_share = used / total_experts if used and total_experts else 1.0
    layer_bytes = weights["total"] - weights["token_embd"] - weights["output"] + (
        weights["token_embd"] if weights.get("tied") else 0)
    expert_bytes = weights.get("experts", 0)
    dense_bytes = layer_bytes - expert_bytes
    moe_layers = weights.get("moe_layers", 0) or 1
    fill = speed["context_fill"]
    kv_read = kv_per_token * fill
    gpu_layers = fit["gpu_layers"] if hw.gpus else 0
    cpu_moe = fit.get("cpu_moe_layers", 0)
    gpu_share = gpu_layers / layers
    experts_on_gpu = max(0.0, gpu_share - cpu_moe / moe_layers) if expert_bytes else 0.0
    gpu_bytes = dense_bytes * gpu_share + expert_bytes * active_share * experts_on_gpu
    cpu_bytes = dense_bytes * (1 - gpu_share) + expert_bytes * active_share * (1 - experts_on_gpu)
    if gpu_layers == layers:
        gpu_bytes += weights["output"]
        gpu_kv, cpu_kv = kv_read, 0
    else:
        cpu_bytes += weights["output"]
        gpu_kv, cpu_kv = 0, kv_read
    basis: list[str] = []
    ceiling = predicted = 0.0   # seconds per token
    if gpu_bytes > 0:
        if not hw.gpu_bandwidth:
            return {"decode_tokens_per_s": None, "basis": "the GPUs' memory bandwidth is unknown: give --gpu-bw"}
        ceiling += (gpu_bytes + gpu_kv) / hw.gpu_bandwidth
        predicted += ((gpu_bytes + gpu_kv) / (hw.gpu_bandwidth * speed["gpu_efficiency"])
                      + gpu_layers * speed["gpu_layer_overhead_us"] * 1e-6)
        basis.append(f"{(gpu_bytes + gpu_kv) / 1e9:.2f} GB per token from VRAM at {hw.gpu_bandwidth / 1e9:.0f} GB/s "
                     f"({hw.gpu_bandwidth_source}), of which llama.cpp reaches {speed['gpu_efficiency']:.0%} plus "
                     f"{speed['gpu_layer_overhead_us']} us per layer (published runs)")
    if cpu_bytes > 0:
        if not hw.cpu_bandwidth:
            return {"decode_tokens_per_s": None, "basis": "host memory bandwidth is unknown: give --mem-bw or "
                                                          "--measure-bw"}
        ceiling += (cpu_bytes + cpu_kv) / hw.cpu_bandwidth
        published = hw.cpu_bandwidth * speed["cpu_efficiency"]
        shares = _type_shares(weights.get("types") or {}, active_share)
        if hw.cpu_rates and shares:
            # A kernel cannot stream faster than the memory feeds it.
            predicted += sum(cpu_bytes * share / min(hw.cpu_rates.get(t, published), hw.cpu_bandwidth)
                             for t, share in shares.items())
            rated = ", ".join(f"{t} {hw.cpu_rates[t] / 1e9:.1f}" for t in shares if t in hw.cpu_rates)
            unrated = [t for t, share in shares.items() if t not in hw.cpu_rates and share >= 0.01]
            how = (f"llama.cpp's own rate per weight type, {hw.cpu_rates_source}: {rated} GB/s"
                   + (f"; {', '.join(unrated)} at {speed['cpu_efficiency']:.0%} of the bandwidth" if unrated else ""))
        else:
            predicted += cpu_bytes / published
            how = f"of which llama.cpp reaches {speed['cpu_efficiency']:.0%} (published runs)"
        predicted += cpu_kv / hw.cpu_bandwidth
        basis.append(f"{(cpu_bytes + cpu_kv) / 1e9:.3f} GB per token from RAM at {hw.cpu_bandwidth / 1e9:.1f} GB/s "
                     f"({hw.cpu_bandwidth_source}), {how}")
    note = f"; weights read once per token, KV at {fill} tokens of context"
    if active_share < 1:
        note += f"; {used} of {total_experts} experts per token"
    return {"decode_tokens_per_s": round(1 / predicted, 1) if predicted else None,
            "decode_ceiling_tokens_per_s": round(1 / ceiling, 1) if ceiling else None,
            "gpu_bytes_per_token": int(gpu_bytes + gpu_kv), "cpu_bytes_per_token": int(cpu_bytes + cpu_kv),
            "basis": "; ".join(basis) + note, **predict_prompt(weights, hw, gpu_layers, active_share)}


def predict_prompt(weights: dict[str, Any], hw: Hardware, gpu_layers: int, active_share: float) -> dict[str, Any]:
    """Prompt tokens/s on the CPU from llama.cpp's measured arithmetic rate for each weight type: a
    prompt token multiplies (2 operations per weight) every weight of the layers it uses; the output
    layer runs for the last token only. Not predicted on a GPU: the knowledge base has no GPU FLOPS."""
    if gpu_layers:
        return {"prompt_tokens_per_s": None, "prompt_basis": "on a GPU: not predicted (no GPU FLOPS in the data)"}
    flops = hw.cpu_prompt_flops or {}
    ops = {t: 2 * (dense + experts * active_share) / type_bytes(t, 1 << 20) * (1 << 20)
           for t, (dense, experts, _) in (weights.get("types") or {}).items()}
    ops = {t: n for t, n in ops.items() if n}
    if not ops or not all(t in flops for t in ops if ops[t] >= 0.01 * sum(ops.values())):
        return {"prompt_tokens_per_s": None,
                "prompt_basis": "not predicted: measure llama.cpp's rates on the host (--measure-engine)"}
    seconds = sum(n / flops[t] for t, n in ops.items() if t in flops)
    return {"prompt_tokens_per_s": round(1 / seconds, 1),
            "prompt_basis": f"{sum(ops.values()) / 1e9:.2f} GFLOP per prompt token at llama.cpp's measured rates "
                            f"({', '.join(f'{t} {flops[t] / 1e9:.0f}' for t in ops if t in flops)} GFLOP/s)"}


def _type_shares(types: dict[str, list[int]], active_share: float) -> dict[str, float]:
    """Share of each weight type in the bytes a token reads (routed experts at the share a token uses)."""
    read = {t: dense + experts * active_share + output for t, (dense, experts, output) in types.items()}
    total = sum(read.values())
    return {t: b / total for t, b in sorted(read.items(), key=lambda kv: -kv[1]) if b} if total else {}


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
    offload = fit.get("vllm_cpu_offload_gib")
    settings = {
        # No GPU: no -ngl at all (a CPU build warns about it); all layers: 'all' (the output layer too).
        "gpu_layers": None if not hw.gpus else ("all" if full else fit["gpu_layers"]),
        "layers": model["layers"], "context_per_slot": context, "slots": parallel, "kv_type": kv_type,
        # a quantized V cache needs flash attention in llama.cpp
        "flash_attn": "on" if kv_type != "f16" else "auto",
        "threads": hw.cores or hw.cpus or 4, "threads_batch": hw.cpus or hw.cores or 4,
        "batch": server["batch"], "ubatch": server["ubatch"],
        "split_mode": "layer" if fit["gpus_needed"] > 1 else None, "numa_nodes": hw.numa_nodes,
        "cpu_moe_layers": fit.get("cpu_moe_layers") or None,
        "tensor_parallel": fit["vllm_tensor_parallel"] if offload else tp,
        "cpu_offload_gib": offload,
        "gpu_memory_utilization": knowledge.load("sizing")["overhead"]["vllm_gpu_memory_utilization"],
    }
    template = flags.chat_template_for(model.get("arch"), model.get("chat_template", True))
    result: dict[str, Any] = {"settings": settings,
                              "llama_cpp": {"flags": flags.as_argv(flags.llama_server(settings, chat_template=template))}}
    recommended = "llama.cpp"
    if tp and fit["verdict"] in ("fits", "fits-multi-gpu"):  # vLLM keeps every weight in VRAM
        result["vllm"] = {"flags": flags.as_argv(flags.vllm(settings))}
    elif offload:
        speed = knowledge.load("sizing")["speed"]
        per_token = offload * GIB / (speed["pcie_host_to_gpu_gb_s"] * 1e9)  # the GPUs copy their parts at once
        result["vllm"] = {"flags": flags.as_argv(flags.vllm(settings)),
                          "decode_tokens_per_s_ceiling": round(1 / per_token, 2),
                          "note": f"--cpu-offload-gb copies {offload} GiB per GPU over PCIe in every forward pass "
                                  f"(at most {1 / per_token:.2f} tok/s at {speed['pcie_host_to_gpu_gb_s']} GB/s, "
                                  f"{speed['pcie_source']}); llama.cpp reads only the experts a token uses from RAM"}
        if fit["gpus_needed"] > 1 and model["source"] != "gguf":
            recommended = "vllm"
    result["recommended"] = recommended
    return result
