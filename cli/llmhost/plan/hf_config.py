"""A Hugging Face config.json -> the model's shape, for `llmhost plan CONFIG.json --quant Q4_K_M`.

Users name models by repository and have the config before any GGUF exists; its fields decide the
tensors (dense or mixture-of-experts feed-forward, GQA or latent attention, sliding windows), and
llama.cpp's quantization rules then size them as `--model NAME` does. A safetensors index beside it
(model.safetensors.index.json) gives the exact bytes of the unquantized weights vLLM would load.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from llmhost.errors import LlmhostError
from llmhost.plan import Shape

MAX_CONFIG_BYTES = 1 << 20
# model_type -> the llama.cpp architecture name its GGUF carries (chat template and KV rules key off it).
ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3moe",
        "mixtral": "llama", "gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3", "deepseek_v3": "deepseek2",
        "deepseek_v2": "deepseek2", "gpt_oss": "gpt-oss", "phi3": "phi3"}


def _load(source: str) -> dict[str, Any]:
    if re.match(r"^https?://", source, re.IGNORECASE):
        try:
            with urllib.request.urlopen(source, timeout=30) as answer:  # noqa: S310 - http(s) only
                raw = answer.read(MAX_CONFIG_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LlmhostError(f"config {source!r} cannot be read: {getattr(exc, 'reason', exc)}") from None
    else:
        path = Path(source)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise LlmhostError(f"config {source!r} is not a file: expected a config.json or a model directory")
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise LlmhostError(f"config {source!r} is larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config.json")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise LlmhostError(f"config {source!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LlmhostError(f"config {source!r} is not a JSON object (got {type(data).__name__})")
    # Multimodal configs (Gemma 3, Llama 4) nest the language model.
    return data.get("text_config") if isinstance(data.get("text_config"), dict) else data


def _int(config: dict[str, Any], source: str, *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = config.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LlmhostError(f"config {source!r} has {key} = {value!r}: expected a non-negative integer")
            return value
    if default is None:
        raise LlmhostError(f"config {source!r} has none of {', '.join(keys)}")
    return default


def shape_from_config(source: str) -> Shape:
    config = _load(source)
    model_type = str(config.get("model_type") or "")
    arch = ARCH.get(model_type, model_type or "llama")
    hidden = _int(config, source, "hidden_size", "d_model")
    heads = _int(config, source, "num_attention_heads")
    if not hidden or not heads:
        raise LlmhostError(f"config {source!r}: hidden_size and num_attention_heads must be positive")
    experts = _int(config, source, "n_routed_experts", "num_experts", "num_local_experts", default=0)
    shape = Shape(
        arch=arch, layers=_int(config, source, "num_hidden_layers", "n_layer"), hidden=hidden,
        ff=_int(config, source, "intermediate_size", default=4 * hidden), heads=heads,
        kv_heads=_int(config, source, "num_key_value_heads", default=heads),
        head_dim=_int(config, source, "head_dim", default=hidden // heads),
        vocab=_int(config, source, "vocab_size"), tied=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=bool(config.get("attention_bias", model_type == "qwen2")),
        context=_int(config, source, "max_position_embeddings", default=0) or None,
        sliding_window=_int(config, source, "sliding_window", default=0) or None,
        experts=experts, experts_used=_int(config, source, "num_experts_per_tok", "num_experts_per_token",
                                           default=0) if experts else 0,
        expert_ff=_int(config, source, "moe_intermediate_size", "intermediate_size", default=0) if experts else 0,
        shared_experts=_int(config, source, "n_shared_experts", default=0),
        dense_layers=_int(config, source, "first_k_dense_replace", default=0),
        kv_lora_rank=_int(config, source, "kv_lora_rank", default=0),
        q_lora_rank=_int(config, source, "q_lora_rank", default=0),
        rope_dim=_int(config, source, "qk_rope_head_dim", default=0),
        nope_dim=_int(config, source, "qk_nope_head_dim", default=0),
    )
    if shape.kv_lora_rank:
        shape.head_dim_v = _int(config, source, "v_head_dim", default=shape.head_dim)
    return shape


def safetensors_bytes(source: str) -> int | None:
    """The total_size of model.safetensors.index.json beside a local config, None when there is none."""
    path = Path(source)
    index = (path if path.is_dir() else path.parent) / "model.safetensors.index.json"
    if re.match(r"^https?://", source, re.IGNORECASE) or not index.is_file():
        return None
    try:
        total = json.loads(index.read_bytes()[:MAX_CONFIG_BYTES * 8]).get("metadata", {}).get("total_size")
    except (ValueError, AttributeError):
        return None
    return total if isinstance(total, int) and total > 0 else None
