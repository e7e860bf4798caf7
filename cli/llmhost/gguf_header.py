"""Read what `plan` needs from a GGUF file's header with the `gguf` package (no weights loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmhost.errors import LlmhostError

GGUF_MAGIC = b"GGUF"


def read(path: str) -> dict[str, Any]:
    """-> {arch, layers, kv_heads, head_dim_k, head_dim_v, context, tensors: [(name, type, n_bytes)], weight_bytes, file_bytes}"""
    file = Path(path)
    if not file.is_file():
        raise LlmhostError(f"model {path!r} is not a file: expected a .gguf file")
    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise LlmhostError(f"model {path!r} is not GGUF: it starts with {magic!r}, expected b'GGUF'")
    import gguf  # numpy-backed: imported only when a file is planned

    try:
        reader = gguf.GGUFReader(str(file))
        fields = {key: field.contents() for key, field in reader.fields.items()
                  if not key.startswith("tokenizer.ggml.") and key != "tokenizer.chat_template"}
        has_template = "tokenizer.chat_template" in reader.fields
        tensors = [(t.name, t.tensor_type.name, int(t.n_bytes), [int(x) for x in t.shape]) for t in reader.tensors]
    except (ValueError, IndexError, KeyError, OSError, EOFError) as exc:
        raise LlmhostError(f"model {path!r} is a truncated or corrupt GGUF: {exc}") from None
    arch = fields.get("general.architecture")
    if not arch:
        raise LlmhostError(f"model {path!r} has no general.architecture in its GGUF header")

    def key(name, default=None):
        return fields.get(f"{arch}.{name}", default)

    heads = key("attention.head_count")
    kv_heads = key("attention.head_count_kv", heads)
    hidden = key("embedding_length")
    head_dim = key("attention.key_length", hidden // heads if hidden and heads else None)
    # Per-layer head counts (some architectures) come as lists: size the KV cache by their mean.
    if isinstance(kv_heads, list):
        kv_heads = sum(kv_heads) / len(kv_heads)
    weight_bytes = sum(t[2] for t in tensors)
    if weight_bytes > file.stat().st_size:
        raise LlmhostError(f"model {path!r} is truncated: its tensors need {weight_bytes} bytes, the file has "
                           f"{file.stat().st_size}")
    return {
        "arch": arch, "name": fields.get("general.name"), "layers": key("block_count"), "hidden": hidden,
        "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
        "head_dim_v": key("attention.value_length", head_dim), "context": key("context_length"),
        "vocab": next((t[3][1] for t in tensors if t[0] == "token_embd.weight"), None),
        "file_type": fields.get("general.file_type"), "chat_template": has_template, "tensors": tensors, "weight_bytes": weight_bytes,
        "file_bytes": file.stat().st_size,
    }
