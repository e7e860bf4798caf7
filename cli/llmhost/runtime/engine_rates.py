"""llama.cpp's own decode rate per weight type on this host: how many bytes of weights of one type its CPU
kernels turn into a token each second, on the threads the plan gives them.

A memory-bandwidth ceiling is only half the story on a CPU: with few cores, the dequantise-and-dot
kernels, not the memory, set the pace, and each type has its own rate (on the lab's 2 vCPUs Q5_0 runs at
half the rate of Q8_0, both below the memory's). So, as STREAM measures the memory, this measures the
kernels: a synthetic llama model with the planned model's widths whose matrices are all of one type
(zeros: the kernels run the same instructions whatever the values), large enough not to sit in the
caches, decoded by llama-bench; bytes of weights per token x tokens/s is the rate, and a 128-token
prompt gives the rate of arithmetic. Nothing of the user's model is run, and nothing is left behind.
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
from pathlib import Path

from llmhost.errors import LlmhostError
from llmhost.plan import gguf_header
from llmhost.runtime import serve

HIDDEN, FEED_FORWARD = 2048, 5632   # when the model's own widths are not known
TARGET_BYTES = 160_000_000          # beyond the last-level cache of today's CPUs
TOKENS = 32
PROMPT = 128   # one batch: a prompt's rate of arithmetic, not of memory
# Only norms are F32 in a quantised model: too few bytes to be worth a run; they count at the memory's rate.
SKIP = {"F32"}
_U32, _I32, _F32, _STRING, _ARRAY = 4, 5, 6, 8, 9   # GGUF value types
_FORMATS = {_U32: "<I", _I32: "<i", _F32: "<f"}
_ALIGN = 32


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, kind: int, value) -> bytes:
    """One GGUF key/value: 4 u32, 5 i32 array item, 6 f32, 8 string, 9 array of (item kind, items)."""
    if kind == _ARRAY:
        item_kind, items = value
        body = struct.pack("<IQ", item_kind, len(items)) + b"".join(
            _string(v) if item_kind == _STRING else struct.pack(_FORMATS[item_kind], v) for v in items)
    else:
        body = _string(value) if kind == _STRING else struct.pack(_FORMATS[kind], value)
    return _string(key) + struct.pack("<I", kind) + body


def shape_like(hidden: int | None, feed_forward: int | None) -> tuple[int, int]:
    """The model's own widths, rounded up to 256 (the largest block of any type): a small model's short
    rows run slower per byte than long ones. A big model's are halved until one layer holds at most
    TARGET_BYTES weights (rows that long run at the same rate; the file stays small)."""
    def up(n: int | None, default: int) -> int:
        return -(-n // 256) * 256 if n and n > 0 else default

    hidden, feed_forward = up(hidden, HIDDEN), up(feed_forward, FEED_FORWARD)
    while 4 * hidden * hidden + 3 * hidden * feed_forward > TARGET_BYTES and hidden > 256:
        hidden, feed_forward = up(hidden // 2, 256), up(feed_forward // 2, 256)
    return hidden, feed_forward


def synthetic_model(path: Path, type_name: str, target_bytes: int = TARGET_BYTES,
                    shape: tuple[int, int] = (HIDDEN, FEED_FORWARD)) -> tuple[int, int]:
    """Write a llama-architecture GGUF whose matrices are all type_name, its data a hole of zeros (a
    sparse file: nothing to write); -> (bytes, weights) its matrices hold: what every token reads, and
    multiplies. The standard library only: hosts run llmhost without numpy."""
    by_name = {name: (type_id, block, size) for type_id, (name, block, size) in gguf_header.ggml_types().items()}
    if type_name not in by_name:
        raise LlmhostError(f"weight type {type_name!r} is not a GGML type: expected one of {', '.join(by_name)}")
    type_id, block, size = by_name[type_name]
    f32 = by_name["F32"][0]
    hidden, ff = shape
    heads = max(1, hidden // 128)

    def nbytes(ne0: int, ne1: int) -> int:
        return ne1 * (ne0 // block) * size

    per_layer = 4 * nbytes(hidden, hidden) + 2 * nbytes(hidden, ff) + nbytes(ff, hidden)
    layers = max(1, round(target_bytes / per_layer))
    # The smallest vocabulary llama.cpp loads: three specials and the 256 byte tokens.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    kvs = [_kv("general.architecture", _STRING, "llama"),
           *(_kv(f"llama.{key}", _U32, value) for key, value in (
               ("context_length", 4096), ("embedding_length", hidden), ("block_count", layers),
               ("feed_forward_length", ff), ("attention.head_count", heads),
               ("attention.head_count_kv", heads), ("rope.dimension_count", hidden // heads))),
           _kv("llama.attention.layer_norm_rms_epsilon", _F32, 1e-5),
           _kv("tokenizer.ggml.model", _STRING, "llama"),
           _kv("tokenizer.ggml.tokens", _ARRAY, (_STRING, tokens)),
           _kv("tokenizer.ggml.scores", _ARRAY, (_F32, [0.0] * len(tokens))),
           _kv("tokenizer.ggml.token_type", _ARRAY, (_I32, [2, 3, 3] + [6] * 256)),
           _kv("tokenizer.ggml.bos_token_id", _U32, 1), _kv("tokenizer.ggml.eos_token_id", _U32, 2)]
    tensors = [("token_embd.weight", f32, hidden, len(tokens), hidden * len(tokens) * 4),
               ("output_norm.weight", f32, hidden, 1, hidden * 4),
               ("output.weight", f32, hidden, len(tokens), hidden * len(tokens) * 4)]
    for i in range(layers):
        tensors += [(f"blk.{i}.{norm}.weight", f32, hidden, 1, hidden * 4) for norm in ("attn_norm", "ffn_norm")]
        tensors += [(f"blk.{i}.{name}.weight", type_id, hidden, hidden, nbytes(hidden, hidden))
                    for name in ("attn_q", "attn_k", "attn_v", "attn_output")]
        tensors += [(f"blk.{i}.ffn_gate.weight", type_id, hidden, ff, nbytes(hidden, ff)),
                    (f"blk.{i}.ffn_up.weight", type_id, hidden, ff, nbytes(hidden, ff)),
                    (f"blk.{i}.ffn_down.weight", type_id, ff, hidden, nbytes(ff, hidden))]
    infos, offset = [], 0
    for name, tid, ne0, ne1, length in tensors:
        dims = (ne0,) if ne1 == 1 else (ne0, ne1)
        infos.append(_string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, tid, offset))
        offset += -(-length // _ALIGN) * _ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % _ALIGN)
    with open(path, "wb") as out:
        out.write(head)
        out.truncate(len(head) + offset)
    return layers * per_layer, layers * (4 * hidden * hidden + 3 * hidden * ff)


def _rate(value) -> float | None:
    """A tokens/s figure only when it is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 < value < 1e9 else None


def bench_binary(server: str) -> Path:
    """llama-bench beside the llama-server binary, or in the directory given (the artefact ships both)."""
    given = Path(server)
    bench = given / "llama-bench" if given.is_dir() else given.with_name("llama-bench")
    if not bench.is_file():
        raise LlmhostError(f"no llama-bench beside {server}: expected {bench} (llmhost runtime build makes both)")
    return bench


def rates(server: str, types: list[str], threads: int, timeout: float = 300.0,
          shape: tuple[int, int] = (HIDDEN, FEED_FORWARD)) -> dict[str, dict]:
    """-> {type: {'bytes_per_s', 'tokens_per_s', 'prompt_flops', 'prompt_tokens_per_s'} or {'error'}}
    for every type of weights given."""
    bench = bench_binary(server)
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="llmhost-rates-") as tmp:
        for type_name in types:
            if type_name in SKIP:
                continue
            model = Path(tmp) / f"{type_name}.gguf"
            try:
                weight_bytes, weights = synthetic_model(model, type_name, shape=shape)
                run = subprocess.run([str(bench), "-m", str(model), "-p", str(PROMPT), "-n", str(TOKENS), "-r", "3",
                                      "-t", str(threads), "-ngl", "0", "-o", "json"],
                                     capture_output=True, text=True, timeout=timeout, check=False)
                rows = json.loads(run.stdout[:1 << 20]) if run.returncode == 0 else []
                rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
                speed = _rate(next((r.get("avg_ts") for r in rows if r.get("n_gen")), None))
                prompt = _rate(next((r.get("avg_ts") for r in rows if r.get("n_prompt")), None))
            except LlmhostError as exc:
                found[type_name] = {"error": str(exc)}
                continue
            except (OSError, ValueError, KeyError, IndexError, TypeError, subprocess.TimeoutExpired) as exc:
                found[type_name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
                continue
            finally:
                model.unlink(missing_ok=True)
            if not speed:
                tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
                how = serve.signal_name(run.returncode) if run.returncode < 0 else f"exited {run.returncode}"
                found[type_name] = {"error": f"llama-bench {how}: {tail[0][:160]}"}
                continue
            found[type_name] = {"bytes_per_s": weight_bytes * speed, "tokens_per_s": round(speed, 2)}
            if prompt:
                found[type_name].update(prompt_flops=2 * weights * prompt, prompt_tokens_per_s=round(prompt, 1))
    return found
