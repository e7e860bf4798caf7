"""`llmhost plan`: sizes against real published GGUF files and the real Gemma 3 270M header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmhost import plan
from llmhost.plan import gguf_header
from llmhost.main import cli

from conftest import write_snapshot

GB = 1e9
# Published Q-file sizes (decimal GB, as Hugging Face lists them) of real GGUF files, with their repositories.
PUBLISHED = [
    ("llama-3.1-8b", "Q4_K_M", 4.92, "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"),
    ("llama-3.1-8b", "Q5_K_M", 5.73, "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"),
    ("llama-3.1-8b", "Q6_K", 6.60, "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"),
    ("llama-3.1-8b", "Q8_0", 8.54, "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"),
    ("mistral-7b-v0.3", "Q4_K_M", 4.37, "bartowski/Mistral-7B-Instruct-v0.3-GGUF"),
    ("qwen2.5-7b", "Q4_K_M", 4.68, "bartowski/Qwen2.5-7B-Instruct-GGUF"),
    ("qwen2.5-7b", "Q8_0", 8.10, "bartowski/Qwen2.5-7B-Instruct-GGUF"),
    ("qwen2.5-14b", "Q4_K_M", 8.99, "bartowski/Qwen2.5-14B-Instruct-GGUF"),
    ("qwen2.5-32b", "Q4_K_M", 19.85, "bartowski/Qwen2.5-32B-Instruct-GGUF"),
    ("llama-3.1-70b", "Q4_K_M", 42.52, "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF"),
    ("qwen2.5-72b", "Q4_K_M", 47.42, "bartowski/Qwen2.5-72B-Instruct-GGUF"),
]


@pytest.mark.parametrize("model,quant,size_gb,repo", PUBLISHED)
def test_weight_estimate_within_3_percent_of_published_files(model, quant, size_gb, repo):
    estimate = plan.weights_by_shape(plan.shape_from_model(model), quant)["total"]
    assert abs(estimate - size_gb * GB) / (size_gb * GB) < 0.03, (repo, estimate / GB)


def test_params_only_estimate_is_in_the_right_range():
    # 8.03B x 4.89 bpw (measured on Llama-3.1-8B) against the same published file.
    runner = CliRunner()
    out = json.loads(runner.invoke(cli, ["plan", "--params", "8.03B", "--quant", "Q4_K_M", "--gpu-mem", "24GiB",
                                         "--json"]).output)
    assert abs(out["bytes"]["weights"] - 4.92 * GB) / (4.92 * GB) < 0.03


@pytest.fixture(scope="module")
def gemma_header(gemma):
    return gguf_header.read(str(gemma))


def test_gemma_header_is_read_exactly(gemma, gemma_header):
    h = gemma_header
    assert (h["arch"], h["layers"], h["heads"], h["kv_heads"], h["head_dim"]) == ("gemma3", 18, 4, 1, 256)
    assert h["vocab"] == 262144 and h["context"] == 32768
    assert h["chat_template"] is False  # this GGUF carries none: the runtime must be told the format
    assert h["weight_bytes"] == sum(size for _, _, size, _ in h["tensors"]) == 246587904
    assert h["file_bytes"] == gemma.stat().st_size


def test_llama_cpp_quant_rules_reproduce_the_real_file_tensor_for_tensor(gemma_header):
    shape = plan.shape_from_model("gemma-3-270m")
    real = {name: qtype for name, qtype, _, _ in gemma_header["tensors"]}
    assert real["token_embd.weight"] == plan.tensor_type("token_embd", None, 640, shape, "Q4_K_M") == "Q8_0"
    for layer in range(shape.layers):
        for kind, ne0 in (("attn_q", 640), ("attn_v", 640), ("attn_output", 1024), ("ffn_down", 2048)):
            assert real[f"blk.{layer}.{kind}.weight"] == plan.tensor_type(kind, layer, ne0, shape, "Q4_K_M"), (layer, kind)
    by_shape = plan.weights_by_shape(shape, "Q4_K_M")["total"]
    # Gemma 3 adds four small norms per layer that the generic shape leaves out.
    assert abs(by_shape - gemma_header["weight_bytes"]) / gemma_header["weight_bytes"] < 0.005


def test_plan_gemma_from_its_header(gemma):
    result = CliRunner().invoke(cli, ["plan", str(gemma), "--gpu-mem", "8GiB", "--ram", "16GiB", "--ctx", "4096",
                                      "--parallel", "2", "--kv-type", "q8_0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"]["source"] == "gguf" and data["bytes"]["weights"] == 246587904
    # 2 x 18 layers x 1 KV head x 256 x 4096 x 2 requests x 34/32 bytes (q8_0)
    assert data["bytes"]["kv_cache"] == 2 * 18 * 1 * 256 * 4096 * 2 * 34 // 32
    assert data["fit"]["verdict"] == "fits" and data["fit"]["gpu_layers"] == 18
    flags = data["runtime"]["llama_cpp"]["flags"]
    assert flags[flags.index("--gpu-layers") + 1] == "all" and flags[flags.index("--ctx-size") + 1] == "8192"
    assert flags[flags.index("--parallel") + 1] == "2"
    assert flags[flags.index("--flash-attn") + 1] == "on"  # a quantized V cache needs flash attention
    # The Gemma package's GGUF has no chat template: llama-server gets its built-in one.
    assert flags[flags.index("--chat-template") + 1] == "gemma"
    assert flags.index("--no-jinja") < flags.index("--chat-template")  # built-in names only outside jinja


def test_70b_on_one_24gb_card_is_partial_offload_and_on_four_fits():
    runner = CliRunner()
    one = json.loads(runner.invoke(cli, ["plan", "--model", "llama-3.1-70b", "--quant", "Q4_K_M", "--gpu-mem", "24GiB",
                                         "--ram", "128GiB", "--json"]).output)
    assert one["fit"]["verdict"] == "partial-offload" and 0 < one["fit"]["gpu_layers"] < 80
    four = json.loads(runner.invoke(cli, ["plan", "--model", "llama-3.1-70b", "--quant", "Q4_K_M",
                                          "--gpu-mem", "24GiB,24GiB,24GiB,24GiB", "--json"]).output)
    assert four["fit"]["verdict"] == "fits-multi-gpu" and four["fit"]["gpus_needed"] in (2, 3)
    assert four["runtime"]["vllm"]["flags"][1] in ("2", "4")  # tensor parallel must divide 64 heads


def test_partial_offload_without_enough_ram_exits_1():
    result = CliRunner().invoke(cli, ["plan", "--model", "qwen2.5-72b", "--quant", "Q8_0", "--gpu-mem", "24GiB",
                                      "--ram", "16GiB"])
    assert result.exit_code == 1 and "MORE THAN THIS HOST HAS" in result.output


@pytest.mark.parametrize("args,needle", [
    (["--model", "llama-9"], "'llama-9'"),
    (["--params", "seventy", "--quant", "Q4_K_M"], "'seventy'"),
    (["--params", "70B", "--quant", "Q9_X"], "'Q9_X'"),
    (["--model", "llama-3.1-8b", "--quant", "Q4_K_M", "--gpu-mem", "lots"], "'lots'"),
    (["--model", "llama-3.1-8b"], "--quant"),
    ([], "exactly one"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    result = CliRunner().invoke(cli, ["plan", *args])
    assert result.exit_code == 2 and needle in result.output and result.output.count("\n") == 1, result.output


def test_not_gguf_and_truncated_gguf(tmp_path, gemma):
    other = tmp_path / "model.gguf"
    other.write_bytes(b"PK\x03\x04 not a model")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(gemma.read_bytes()[:100_000])
    for path, needle in ((other, "is not GGUF"), (truncated, "truncated"), (tmp_path / "none.gguf", "is not a file")):
        result = CliRunner().invoke(cli, ["plan", str(path)])
        assert result.exit_code == 2 and needle in result.output, result.output


@pytest.mark.parametrize("args,needle", [(["--params", "0", "--quant", "Q4_K_M"], "--params '0'"),
                                         (["--params", "7B", "--quant", "Q4_K_M", "--gpu-mem", "0"], "--gpu-mem '0'"),
                                         (["--params", "7B", "--quant", "Q4_K_M", "--ram", "0GiB"], "--ram '0GiB'")])
def test_zero_sizes_and_counts_are_refused(args, needle):
    result = CliRunner().invoke(cli, ["plan", *args])
    assert result.exit_code == 2 and needle in result.output and "more than 0" in result.output


def test_without_ram_the_hosts_ram_is_judged_not_assumed(tmp_path):
    snap = write_snapshot(tmp_path / "s", files={"/proc/meminfo": "MemTotal:        8388608 kB\n"})
    result = CliRunner().invoke(cli, ["plan", "--params", "70B", "--quant", "Q4_K_M", "--gpu-mem", "24GiB",
                                      "--snapshot", str(snap), "--json"])
    data = json.loads(result.output)
    assert data["host"]["ram"] == 8 << 30 and data["fit"]["ram_ok"] is False and result.exit_code == 1
