"""A Hugging Face model directory (what vLLM users have): config.json and its safetensors files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmhost.errors import LlmhostError

MAX_JSON = 16 << 20  # a config is a few KiB; an index of a 671B model about 1 MiB


def _json(path: Path) -> Any:
    if path.stat().st_size > MAX_JSON:
        raise LlmhostError(f"{path} is {path.stat().st_size} bytes: expected a JSON file under {MAX_JSON >> 20} MiB")
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LlmhostError(f"{path} is not valid JSON: {exc}") from None


def check(directory: str) -> dict[str, Any]:
    """-> {architectures, model_type, files, bytes}; a directory vLLM could not load is refused with the reason."""
    root = Path(directory)
    if not root.is_dir():
        raise LlmhostError(f"model directory {directory!r} is not a directory: expected config.json and *.safetensors")
    config_path = root / "config.json"
    if not config_path.is_file():
        raise LlmhostError(f"model directory {directory!r} has no config.json")
    config = _json(config_path)
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(architectures, list) or not architectures or not all(isinstance(a, str) for a in architectures):
        raise LlmhostError(f"{config_path} names no architectures: expected e.g. [\"LlamaForCausalLM\"]")
    index_path = root / "model.safetensors.index.json"
    if index_path.is_file():
        index = _json(index_path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise LlmhostError(f"{index_path} has no weight_map")
        files = sorted({str(v) for v in weight_map.values()})
    else:
        files = sorted(p.name for p in root.glob("*.safetensors"))
        if not files:
            raise LlmhostError(f"model directory {directory!r} has no *.safetensors files")
    missing = [f for f in files if not (root / f).is_file() or "/" in f or f.startswith(".")]
    if missing:
        raise LlmhostError(f"model directory {directory!r} lacks {', '.join(missing[:5])}"
                           f"{' and more' if len(missing) > 5 else ''} (listed in its index)")
    return {"architectures": architectures, "model_type": config.get("model_type"), "files": files,
            "bytes": sum((root / f).stat().st_size for f in files)}
