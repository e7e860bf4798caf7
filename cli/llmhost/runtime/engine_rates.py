"""llama.cpp's own decode rate per weight type on this host: how many bytes of weights of one type its CPU
kernels turn into a token each second, on the threads the plan gives them.

A memory-bandwidth ceiling is only half the story on a CPU: with few cores, the dequantise-and-dot
kernels, not the memory, set the pace, and each type has its own (Q8_0 and Q4_0 are cheap, K-quants
less so). So, as STREAM measures the memory, this measures the kernels: a synthetic llama model whose
matrices are all of one type (zeros: the kernels run the same instructions whatever the values), large
enough not to sit in the caches, decoded by llama-bench; bytes of weights per token x tokens/s is the
rate. Nothing of the user's model is run, and nothing is left behind.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from llmhost.errors import LlmhostError

HIDDEN, FEED_FORWARD, HEADS = 2048, 5632, 16   # rows divisible by every block size (256)
TARGET_BYTES = 160_000_000                      # beyond the last-level cache of today's CPUs
TOKENS = 32
PROMPT = 128   # one batch: a prompt's rate of arithmetic, not of memory
# Types llama-bench cannot be asked to decode from a file of zeros; they stay at the memory's rate.
SKIP = {"F32"}


def synthetic_model(path: Path, type_name: str, target_bytes: int = TARGET_BYTES) -> tuple[int, int]:
    """Write a llama-architecture GGUF whose matrices are all type_name; -> (bytes, weights) its matrices
    hold: what every token reads, and multiplies."""
    import gguf
    import numpy as np

    try:
        qtype = gguf.GGMLQuantizationType[type_name]
    except KeyError:
        raise LlmhostError(f"weight type {type_name!r} is not a GGML type") from None
    block, size = gguf.GGML_QUANT_SIZES[qtype]

    def nbytes(ne0: int, ne1: int) -> int:
        return ne1 * (ne0 // block) * size

    per_layer = 4 * nbytes(HIDDEN, HIDDEN) + 2 * nbytes(HIDDEN, FEED_FORWARD) + nbytes(FEED_FORWARD, HIDDEN)
    layers = max(1, round(target_bytes / per_layer))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    # The smallest vocabulary llama.cpp loads: three specials and the 256 byte tokens.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3] + [6] * 256)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def matrix(name: str, ne0: int, ne1: int) -> None:
        writer.add_tensor(name, np.zeros((ne1, ne0 // block * size), np.uint8), raw_dtype=qtype)

    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), HIDDEN), np.float32))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    writer.add_tensor("output.weight", np.zeros((len(tokens), HIDDEN), np.float32))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            matrix(f"blk.{i}.{name}.weight", HIDDEN, HIDDEN)
        matrix(f"blk.{i}.ffn_gate.weight", HIDDEN, FEED_FORWARD)
        matrix(f"blk.{i}.ffn_up.weight", HIDDEN, FEED_FORWARD)
        matrix(f"blk.{i}.ffn_down.weight", FEED_FORWARD, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return layers * per_layer, layers * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * FEED_FORWARD)


def bench_binary(server: str) -> Path:
    """llama-bench beside the llama-server binary (the artefact ships both)."""
    bench = Path(server).with_name("llama-bench")
    if not bench.is_file():
        raise LlmhostError(f"no llama-bench beside {server}: expected {bench} (llmhost runtime build makes both)")
    return bench


def rates(server: str, types: list[str], threads: int, timeout: float = 300.0) -> dict[str, dict]:
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
                weight_bytes, weights = synthetic_model(model, type_name)
                run = subprocess.run([str(bench), "-m", str(model), "-p", str(PROMPT), "-n", str(TOKENS), "-r", "3",
                                      "-t", str(threads), "-ngl", "0", "-o", "json"],
                                     capture_output=True, text=True, timeout=timeout, check=False)
                rows = json.loads(run.stdout) if run.returncode == 0 else []
                speed = next((float(r["avg_ts"]) for r in rows if r.get("n_gen")), None)
                prompt = next((float(r["avg_ts"]) for r in rows if r.get("n_prompt")), None)
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
                found[type_name] = {"error": f"llama-bench exited {run.returncode}: {tail[0][:160]}"}
                continue
            found[type_name] = {"bytes_per_s": weight_bytes * speed, "tokens_per_s": round(speed, 2)}
            if prompt:
                found[type_name].update(prompt_flops=2 * weights * prompt, prompt_tokens_per_s=round(prompt, 1))
    return found
