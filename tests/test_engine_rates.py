"""llama.cpp's measured decode rate per weight type: the synthetic model and the real llama-bench on it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llmhost.main import cli
from llmhost.plan import gguf_header
from llmhost.runtime import engine_rates


def test_the_synthetic_model_holds_only_matrices_of_the_asked_type(tmp_path):
    path = tmp_path / "q4_k.gguf"
    matrix_bytes, weights = engine_rates.synthetic_model(path, "Q4_K", target_bytes=20_000_000)
    header = gguf_header.read(str(path))
    matrices = [t for t in header["tensors"] if t[0].startswith("blk.") and len(t[3]) == 2]
    assert matrices and {t[1] for t in matrices} == {"Q4_K"}
    assert sum(t[2] for t in matrices) == matrix_bytes
    assert sum(t[3][0] * t[3][1] for t in matrices) == weights == matrix_bytes // 144 * 256  # Q4_K: 144 B per 256
    assert header["arch"] == "llama" and header["layers"] * 7 == len(matrices)


def test_llama_bench_decodes_it_and_gives_a_rate_and_a_bad_type_is_named(llama_install):
    found = engine_rates.rates(str(llama_install / "bin" / "llama-server"), ["Q8_0", "Q9_X", "F32"], threads=2)
    assert found["Q8_0"]["tokens_per_s"] > 0 and found["Q8_0"]["prompt_tokens_per_s"] > found["Q8_0"]["tokens_per_s"]
    # bytes/s = matrix bytes x tokens/s: a rate of this machine's order (0.1 to 1000 GB/s), not a count
    assert 1e8 < found["Q8_0"]["bytes_per_s"] < 1e12
    assert "Q9_X" in found["Q9_X"]["error"]
    assert "F32" not in found  # norms only: they stay at the memory's rate


def test_a_llama_bench_that_faults_is_named_and_the_plan_falls_back_to_the_bandwidth(gemma, tmp_path):
    # A build for an instruction set this CPU lacks dies of SIGILL: the plan says so and goes on.
    (tmp_path / "llama-server").write_text("")
    bench = tmp_path / "llama-bench"
    bench.write_text("#!/bin/sh\nkill -ILL $$\n")
    bench.chmod(0o755)
    result = CliRunner().invoke(cli, ["plan", str(gemma), "--mem-bw", "20", "--measure-engine",
                                      "--server", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert all("killed by SIGILL" in r["error"] for r in data["engine_rates"].values())
    assert "of which llama.cpp reaches 60%" in data["speed"]["basis"] and data["speed"]["prompt_tokens_per_s"] is None


def test_the_synthetic_model_has_the_models_widths_within_a_budget():
    assert engine_rates.shape_like(640, 2048) == (768, 2048)  # Gemma 3 270M, rounded up to whole 256-blocks
    hidden, ff = engine_rates.shape_like(16384, 53248)  # Llama 3.1 405B: halved until a layer is small
    assert 4 * hidden * hidden + 3 * hidden * ff <= engine_rates.TARGET_BYTES and hidden % 256 == ff % 256 == 0
    assert engine_rates.shape_like(None, None) == (engine_rates.HIDDEN, engine_rates.FEED_FORWARD)
