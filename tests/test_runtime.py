"""The runtime side: llama-server flags rendered from plan settings and checked against the real
binary's --help; build decisions; and, against the real llama-server built from the pinned source
serving the real Gemma 3 270M on loopback, the proof (a faulting CPU variant is skipped), draining,
and `llmhost bench`."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmhost.runtime import bench
from llmhost.errors import LlmhostError
from llmhost.main import cli
from llmhost.runtime import artefact, flags, hf, serve

from conftest import HELP, SETTINGS


def _render(**kw):
    base = {"model": "/m/gemma.gguf", "alias": "gemma", "host": "127.0.0.1", "port": 8081, "help_text": HELP}
    return dict((p[0], p[1] if len(p) > 1 else True) for p in flags.llama_server(SETTINGS, **{**base, **kw}))


def test_help_spellings_map_to_one_long_name():
    aliases = flags.help_aliases(HELP)
    assert aliases["-ngl"] == aliases["--n-gpu-layers"] == aliases["--gpu-layers"] == "--gpu-layers"
    assert aliases["-c"] == "--ctx-size" and aliases["-np"] == "--parallel"
    assert aliases["--no-slots"] == "--no-slots" and aliases["--slots"] == "--slots"
    assert "--mlock" not in aliases and "--load-mode" in aliases  # this build replaced --mlock


def test_a_team_server_context_is_per_slot_with_metrics_and_alias():
    args = _render()
    assert args["--ctx-size"] == "32768" and args["--parallel"] == "8"
    assert args["--alias"] == "gemma" and args["--metrics"] is True
    assert "--gpu-layers" not in args and "--api-key-file" not in args and "--numa" not in args


def test_key_file_load_mode_and_numa_follow_the_service():
    args = _render(api_key_file="/etc/llmhost/k", load_mode="mlock", numa_pinned=True)
    assert args["--api-key-file"] == "/etc/llmhost/k" and args["--load-mode"] == "mmap+mlock"
    assert args["--numa"] == "numactl"
    assert _render(load_mode="none")["--load-mode"] == "none"
    # An older build spells it --mlock / --no-mmap: the renderer follows the binary's help.
    old_help = HELP.replace("-lm,   --load-mode MODE", "--mlock") + "\n--no-mmap      do not memory-map\n"
    assert "--mlock" in _render(load_mode="mlock", help_text=old_help)


def test_overrides_by_any_spelling_replace_or_remove():
    args = _render(overrides={"-c": 8192, "threads": 1, "metrics": False, "cont-batching": True})
    assert args["--ctx-size"] == "8192" and args["--threads"] == "1"
    assert "--metrics" not in args and args["--cont-batching"] is True
    assert list(args).count("--ctx-size") == 1


def test_an_unknown_flag_is_refused_by_name():
    with pytest.raises(LlmhostError, match=r"llama-server does not know --n-gpu: fix inference_flags"):
        _render(overrides={"n-gpu": 0})


def test_plan_prints_what_the_renderer_renders(gemma):
    result = CliRunner().invoke(cli, ["plan", str(gemma), "--ram", "16GiB", "--json", "--parallel", "4"])
    data = json.loads(result.output)
    assert data["runtime"]["llama_cpp"]["flags"] == flags.as_argv(
        flags.llama_server(data["runtime"]["settings"], chat_template="gemma"))
    assert data["runtime"]["settings"]["slots"] == 4 and data["runtime"]["settings"]["gpu_layers"] is None


def test_alias_and_exec_line():
    assert flags.model_alias("/srv/Qwen3-8B-Q4_K_M-00001-of-00002.gguf") == "Qwen3-8B-Q4_K_M"
    assert flags.model_alias("Llama-3.1-70B-Instruct/") == "Llama-3.1-70B-Instruct"
    line = flags.exec_line(["/b/llama-server", "--alias", "my model", "--chat-template", "50%$x"])
    assert line == '/b/llama-server --alias "my model" --chat-template 50%%$$x'


CUDA_FACT = {"nvcc": "/usr/bin/nvcc", "default": "12.4", "source": "distribution", "host_compiler": "g++-13"}


@pytest.mark.parametrize("build,gpus,caps,arch,cuda,archs,expected", [
    ("auto", 0, [], None, CUDA_FACT, "", {"backend": "cpu", "cuda_archs": []}),
    ("auto", 8, ["9.0"] * 8, "hopper", CUDA_FACT, "", {"backend": "cuda", "cuda_archs": ["90"], "host_cxx": "g++-13"}),
    # Driver not loaded yet (reboot pending): every capability of the architecture the PCI ids name.
    ("auto", 2, [], "ampere", CUDA_FACT, "", {"cuda_archs": ["80", "86", "87"]}),
    ("cuda", 2, ["8.9", "12.0"], None, CUDA_FACT, "", {"cuda_archs": ["89", "120"]}),
    ("cuda", 0, [], None, CUDA_FACT, "90-real;89", {"cuda_archs": ["90-real", "89"]}),
    ("cpu", 4, ["9.0"], "hopper", {}, "", {"backend": "cpu"}),
])
def test_build_follows_the_gpus(build, gpus, caps, arch, cuda, archs, expected):
    spec = artefact.decide(build, gpus, caps, arch, cuda, archs)
    assert {k: getattr(spec, k) for k in expected} == expected
    if spec.backend == "cuda":
        assert f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(spec.cuda_archs)}" in spec.cmake_main()
        assert "-DCMAKE_CUDA_COMPILER=/usr/bin/nvcc" in spec.cmake_main()
    assert "-DGGML_NATIVE=OFF" in spec.cmake_main() and "-DGGML_AVX512=ON" not in spec.cmake_main()


@pytest.mark.parametrize("args,needle", [
    (("metal", 0, []), "inference_llama_build 'metal'"),
    # A GPU host without a toolkit would silently serve from the CPU: refused, naming both ways out.
    (("auto", 1, ["9.0"], "hopper", {}), "1 NVIDIA GPU.*cuda_toolkit role.*inference_llama_build=cpu"),
    (("cuda", 0, [], None, CUDA_FACT), "set inference_cuda_architectures"),
    (("cuda", 1, [], None, CUDA_FACT, "sm_90"), "inference_cuda_architectures 'sm_90'"),
    (("cpu", 0, [], None, None, "", ["haswell2"]), "CPU variant 'haswell2' is not known"),
])
def test_build_refusals(args, needle):
    with pytest.raises(LlmhostError, match=needle):
        artefact.decide(*args)


def test_the_id_changes_with_what_shapes_the_binaries():
    source = {"sha256": "a" * 64}
    cpu = artefact.BuildSpec("cpu", ["zen4"]).describe()
    assert artefact.artefact_id(source, cpu) == artefact.artefact_id(source, artefact.BuildSpec("cpu", ["zen4"]).describe())
    assert artefact.artefact_id(source, cpu) != artefact.artefact_id(source, artefact.BuildSpec("cpu", []).describe())
    assert artefact.artefact_id(source, cpu) != artefact.artefact_id({"sha256": "b" * 64}, cpu)


def test_needs_from_objdump():
    text = ("  NEEDED               libllama.so.0\n  NEEDED               libgomp.so.1\n  NEEDED  libc.so.6\n"
            "  required from libc.so.6:\n    0x06969194 0x00 05 GLIBC_2.14\n    0x0d696914 0x00 03 GLIBC_2.34\n"
            "  required from libstdc++.so.6:\n    0x08922974 0x00 04 GLIBCXX_3.4.30\n    0x056bafd3 0x00 06 CXXABI_1.3\n")
    needs = artefact.needs_from_objdump([text], {"libllama.so.0"})
    assert needs == {"libraries": ["libc.so.6", "libgomp.so.1"], "cxxabi": "1.3", "glibc": "2.34", "glibcxx": "3.4.30"}


def test_sources_are_checked(tmp_path):
    with pytest.raises(LlmhostError, match="needs its sha256"):
        artefact.resolve_source("https://example.invalid/x.tar.gz", "", tmp_path)
    tarball = tmp_path / "x.tar.gz"
    tarball.write_bytes(b"not really")
    with pytest.raises(LlmhostError, match="has sha256 .* expected " + "0" * 64):
        artefact.resolve_source(str(tarball), "0" * 64, tmp_path)
    with pytest.raises(LlmhostError, match="neither a URL"):
        artefact.resolve_source(str(tmp_path / "missing"), "", tmp_path)
    with pytest.raises(LlmhostError, match="no llama.cpp source tree"):
        artefact.find_tree(tmp_path)


def test_eligible_variants_are_those_the_cpu_claims_best_first():
    cpuinfo = "flags\t: sse4_2 avx f16c fma avx2 bmi2 avx512f avx512vbmi avx512_vnni avx512_bf16\n"
    assert serve.eligible_variants(cpuinfo, ["skylakex", "icelake", "zen4", "sapphirerapids"]) == \
        ["zen4", "icelake", "skylakex"]
    amx = cpuinfo.replace("\n", " amx_tile amx_int8\n")
    assert serve.eligible_variants(amx, ["sapphirerapids", "zen4"])[0] == "sapphirerapids"
    assert serve.eligible_variants("flags\t: sse4_2 avx avx2\n", ["skylakex"]) == []


def test_in_flight_reads_both_servers_gauges():
    text = ("# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
            "llamacpp:requests_deferred 1\nllamacpp:tokens_predicted_total 99\n"
            'vllm:num_requests_running{model_name="m"} 3.0\n')
    assert serve.in_flight(text) == 6


def test_proof_flags_keep_everything_but_where_and_how_big():
    args = [["--model", "/m"], ["--host", "0.0.0.0"], ["--port", "80"], ["--ctx-size", "32768"], ["--parallel", "8"],
            ["--gpu-layers", "all"], ["--load-mode", "mmap+mlock"], ["--threads", "2"], ["--api-key-file", "/etc/k"]]
    proof = dict(tuple(p) for p in serve.proof_args(args, 5555, "/tmp/k", cpu_only=True))
    assert proof == {"--model": "/m", "--threads": "2", "--host": "127.0.0.1", "--port": "5555", "--ctx-size": "1024",
                     "--parallel": "1", "--api-key-file": "/tmp/k", "--gpu-layers": "0"}


def test_hf_directory_check(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x" * 10)
    with pytest.raises(LlmhostError, match="lacks model-00002-of-00002.safetensors"):
        hf.check(str(tmp_path))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"y" * 5)
    assert hf.check(str(tmp_path))["bytes"] == 15
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(LlmhostError, match="names no architectures"):
        hf.check(str(tmp_path))


# --- the real server ---------------------------------------------------------------------------

def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_bench_measures_the_real_server_and_metrics_count_its_tokens(server):
    before = _metric(server, "llamacpp:tokens_predicted_total")
    result = bench.run(server, model="gemma-test", concurrency=(1, 2), requests=2, max_tokens=8)
    assert result["prompt_tokens"] > 10
    for level in result["levels"]:
        assert level["errors"] == 0 and level["requests"] == 2
        assert 0 < level["ttft_p50_s"] <= level["latency_p50_s"] <= level["latency_p95_s"]
        assert level["decode_tokens_per_s"] > 0 and level["requests_per_s"] > 0
        assert 0 < level["itl_p50_s"] <= level["itl_p95_s"] < level["latency_p95_s"]
    assert _metric(server, "llamacpp:tokens_predicted_total") >= before + 4 * 2


def test_a_second_bench_run_reads_every_prompt_afresh(server):
    """llama-server reuses a slot's cached prompt prefix: a run that repeated an earlier run's prompts (the
    same server behind two endpoints in --compare, or a second bench) would measure a prefill it skipped."""
    processed = []
    for _ in range(2):
        before = _metric(server, "llamacpp:prompt_tokens_total")
        result = bench.run(server, model="gemma-test", concurrency=(1,), requests=3, max_tokens=2)
        processed.append(_metric(server, "llamacpp:prompt_tokens_total") - before)
    # Each run reads its 3 prompts and the prompt-length probe whole, less at most the chat template's
    # shared head that a slot may keep (a handful of tokens per request).
    assert processed[1] >= 0.8 * processed[0] >= 0.8 * 3 * result["prompt_tokens"]


def test_drain_waits_for_the_request_in_flight(server):
    body = json.dumps({"prompt": "Count slowly:", "n_predict": 96, "temperature": 0}).encode()
    worker = threading.Thread(target=lambda: urllib.request.urlopen(urllib.request.Request(
        f"{server}/completion", body, {"Content-Type": "application/json"}), timeout=120).read())
    worker.start()
    deadline = time.monotonic() + 20
    while serve.in_flight(urllib.request.urlopen(f"{server}/metrics", timeout=5).read().decode()) == 0:
        assert time.monotonic() < deadline, "the request never showed as in flight"
        time.sleep(0.05)
    result = serve.drain(server, 120, poll=0.1)
    worker.join()
    assert result["drained"] and result["in_flight"] == 0 and result["waited_s"] > 0


def test_bench_cli_compares_endpoints_in_one_run(server):
    result = CliRunner().invoke(cli, ["bench", server, "--compare", server, "--concurrency", "1", "--requests", "2",
                                      "--max-tokens", "6", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert len(data["results"]) == 2 and data["ratios"][0][0]["concurrency"] == 1
    assert data["ratios"][0][0]["decode_tokens_per_s"] > 0


FAULTING_VARIANT = r"""
/* A CPU backend that claims the best score and faults when ggml initialises it, as an AMX build
   does on a CPU that advertises AMX but cannot run it. */
int ggml_backend_score(void) { return 1 << 20; }
void *ggml_backend_init(void) { __builtin_trap(); return 0; }
"""


def test_prove_skips_a_faulting_variant_and_says_so(llama_install, gemma, tmp_path):
    install = tmp_path / llama_install.name
    shutil.copytree(llama_install, install, symlinks=True)
    good = serve.eligible_variants(Path("/proc/cpuinfo").read_text(),
                                   [p.name[len("libggml-cpu-"):-3] for p in (install / "variants").iterdir()])
    source = tmp_path / "fault.c"
    source.write_text(FAULTING_VARIANT)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(install / "variants" / "libggml-cpu-sapphirerapids.so"),
                    str(source)], check=True)
    args = flags.llama_server(SETTINGS, model=str(gemma), host="127.0.0.1", port=1, help_text=HELP)
    order = ["sapphirerapids"] + [v for v in good if v != "sapphirerapids"][:1]
    result = serve.prove(install, str(gemma), args, timeout=120, variants=order)
    assert result["ok"], result
    assert result["tried"][0]["variant"] == "sapphirerapids" and result["tried"][0]["error"] == "killed by SIGILL"
    assert result["variant"] == (order[1] if len(order) > 1 else "base") and result["tokens"] >= 1
    assert result["cpu_backend"] == (f"libggml-cpu-{order[1]}.so" if len(order) > 1 else "libggml-cpu.so")
    # The choice is kept: the serving directory holds exactly the proven variant, and a later proof reuses it.
    links = sorted(p.name for p in (install / "bin").glob("libggml-cpu-*.so"))
    assert links == ([f"libggml-cpu-{order[1]}.so"] if len(order) > 1 else [])
    again = serve.prove(install, str(gemma), args, timeout=120)
    assert again["ok"] and [t["variant"] for t in again["tried"]] == [result["variant"]]


def test_prove_refuses_a_model_that_does_not_load(llama_install, tmp_path):
    install = tmp_path / llama_install.name
    shutil.copytree(llama_install, install, symlinks=True)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00truncated")
    args = flags.llama_server(SETTINGS, model=str(bad), host="127.0.0.1", port=1, help_text=HELP)
    result = serve.prove(install, str(bad), args, timeout=60, variants=["zen4", "skylakex"])
    # A model that does not load is not the CPU backend's fault: no other variant is tried.
    assert not result["ok"] and len(result["tried"]) == 1 and result["tried"][0]["error"].startswith("exited with")
    assert result["log_tail"]


class _Hostile(threading.Thread):
    """A local endpoint that answers every request with the same body (JSON lists, usage null, broken SSE)."""

    def __init__(self, body: bytes, content_type: str = "application/json"):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(daemon=True)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def run(self):
        self.httpd.serve_forever()


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'{"usage": null}', b'{"choices": "x", "usage": {"prompt_tokens": "9"}}',
                                  b"data: {not json\n\ndata: [1]\n\ndata: {\"choices\": [{\"delta\": 5}]}\n\n",
                                  b"\xff\xfe" * 1000])
def test_bench_against_a_hostile_endpoint_is_a_failed_level_not_a_traceback(body):
    server = _Hostile(body)
    server.start()
    try:
        result = CliRunner().invoke(cli, ["bench", server.url, "--concurrency", "1", "--requests", "1", "--json"])
    finally:
        server.httpd.shutdown()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if result.exit_code == 2:  # not even one chat completion: one line
        assert "did not answer a chat completion" in result.output.splitlines()[-1]
    else:
        data = json.loads(result.output[result.output.index("{"):])
        assert result.exit_code == 1 and data["results"][0]["levels"][0]["errors"] == 1


@pytest.mark.parametrize("endpoint,needle", [("http://127.0.0.1:80x", "not a valid URL"), ("http://", "not an http(s) URL")])
def test_bench_bad_urls_are_one_line(endpoint, needle):
    result = CliRunner().invoke(cli, ["bench", endpoint, "--concurrency", "1"])
    assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("layout", ["llama.cpp-b7000", "llama_cpp_python-0.3.36/vendor/llama.cpp", "."])
def test_the_source_tree_is_found_in_a_tarball_an_sdist_or_a_checkout(tmp_path, layout):
    tree = tmp_path / layout
    (tree / "ggml").mkdir(parents=True)
    (tree / "tools" / "server").mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text("project(llama.cpp)\n")
    assert artefact.find_tree(tmp_path) == tree.resolve() or artefact.find_tree(tmp_path) == tree


@pytest.mark.parametrize("args,needle", [
    (["runtime", "prove", "/nonexistent", "--model", "/m.gguf", "--args-json", "/nonexistent.json"], "is not a readable JSON"),
    (["runtime", "switch", "--unit", "x.service", "--copy", "nocolon", "--url", "http://127.0.0.1:1"], "is not STAGED:FINAL"),
    (["runtime", "switch", "--unit", "x.service", "--move", "/nonexistent:/x", "--url", "http://127.0.0.1:1"],
     "is not a file"),
    (["runtime", "build", "--backend", "cuda"], "CUDA architectures '' are not valid"),
    (["runtime", "build", "--cpu-variants", "haswell9"], "CPU variant 'haswell9' is not known"),
    (["runtime", "hf-check", "/nonexistent"], "is not a directory"),
])
def test_runtime_commands_refuse_bad_input_in_one_line(args, needle):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output


def test_prove_args_json_must_be_pairs_of_strings(tmp_path):
    bad = tmp_path / "args.json"
    bad.write_text('{"--threads": 2}')
    result = CliRunner().invoke(cli, ["runtime", "prove", str(tmp_path), "--model", "/m", "--args-json", str(bad)])
    assert result.exit_code == 2 and "must hold [[flag, value], ...]" in result.output
