"""Parsers and the engine against truncated, empty, binary and malformed input: nothing escapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmhost.checks import preflight
from llmhost.checks import STATUSES
from llmhost.host.hostio import SnapshotHost
from llmhost.host.parsers import ParseError, nvsmi, system, topo
from llmhost.host.parsers.pci import parse_lspci

from conftest import BASE_FILES, REAL, sysfs_gpu, write_snapshot


@pytest.fixture(scope="module")
def hostile_endpoint():
    """A server on 127.0.0.1 that answers every request with whatever body a test sets."""
    import http.server
    import threading

    class Endpoint:
        body, content_type = b"{}", "application/json"

    endpoint = Endpoint()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            self.send_response(200)
            self.send_header("Content-Type", endpoint.content_type)
            self.send_header("Content-Length", str(len(endpoint.body)))
            self.end_headers()
            self.wfile.write(endpoint.body)

        def do_GET(self):  # noqa: N802 - /metrics and /health, as runtime drain and ready read them
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(endpoint.body)))
            self.end_headers()
            self.wfile.write(endpoint.body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    endpoint.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield endpoint
    httpd.shutdown()

FIXTURES = {p.name: p.read_text() for p in REAL.iterdir() if p.suffix in (".xml", ".txt")}
TEXT_PARSERS = [nvsmi.parse, topo.parse, parse_lspci, system.meminfo, system.cpu_flags, system.loaded_modules,
                system.selected, system.cpulist, system.xids, system.secure_boot, system.dkms_status,
                system.df_bytes, system.apt_periodic, lambda t: system.limit(t, "Max locked memory")]
junk = st.one_of(st.text(max_size=400), st.binary(max_size=400).map(lambda b: b.decode("latin-1")))


@settings(max_examples=150, deadline=None)
@given(text=junk)
def test_parsers_raise_only_parse_error(text):
    for parse in TEXT_PARSERS:
        try:
            parse(text)
        except ParseError:
            pass


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(FIXTURES)), cut=st.floats(min_value=0, max_value=1))
def test_truncated_real_outputs(name, cut):
    text = FIXTURES[name][: int(len(FIXTURES[name]) * cut)]
    for parse in (nvsmi.parse, topo.parse, parse_lspci):
        try:
            parse(text)
        except ParseError:
            pass


file_junk = st.one_of(st.just(""), st.binary(max_size=200), st.text(max_size=200).map(str.encode))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.fixed_dictionaries({path: file_junk for path in list(BASE_FILES) + list(sysfs_gpu("0000:01:00.0", "2330"))}),
       smi_cut=st.floats(min_value=0, max_value=1), rc=st.sampled_from([0, 1, 9, 127]))
def test_engine_survives_garbage_everywhere(tmp_path_factory, files, smi_cut, rc):
    xml = FIXTURES["nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"]
    root = write_snapshot(tmp_path_factory.mktemp("junk"), files=files, base=False,
                          cmds={"nvidia-smi-q-x": (xml[: int(len(xml) * smi_cut)], "\x00\xff", rc),
                                "kernel-log": ("NVRM: Xid (PCI:zz): x", "", 0), "nvml": ("{not json", "", 0),
                                "dkms-status": ("\x00:::", "", 0), "lspci-vvv": ("\t\tBAR 1: current size: ?", "", 0)})
    report = preflight.run(SnapshotHost(root))
    assert report.results
    for result in report.results:
        assert result.status in STATUSES
        assert isinstance(result.message, str) and result.message
        # An exception inside a check is a bug, even though the engine contains it.
        assert "could not be evaluated" not in result.message, (result.id, result.message)


# --- snapshot trees: every entry type where the engine reads -----------------------------------

_SNAPSHOT_PATHS = sorted(set(BASE_FILES) | set(sysfs_gpu("0000:01:00.0", "2330")) | {
    "/proc/driver/nvidia/version", "/sys/bus/pci/devices/0000:01:00.0/subsystem_device"})
_CMD_FILES = ["nvidia-smi-q-x.out", "nvidia-smi-q-x.rc", "nvml.out", "lspci-vvv.out", "uname-r.out", "kernel-log.out"]
entry = st.one_of(
    st.tuples(st.just("file"), file_junk),
    st.tuples(st.just("dir"), st.just(b"")),
    st.tuples(st.just("fifo"), st.just(b"")),
    st.tuples(st.just("link"), st.sampled_from(["self", "..", "/etc/passwd", "/proc/self/mem", "missing", "/dev/zero"])),
)


def _place(path, kind, payload):
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        path.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
    elif kind == "dir":
        path.mkdir(exist_ok=True)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink({"self": path.name, "..": ".."}.get(payload, payload), path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(st.sampled_from(_SNAPSHOT_PATHS + [f"cmd/{c}" for c in _CMD_FILES]), entry, max_size=12))
def test_snapshot_trees_of_any_entry_type_replay_in_bounded_time(tmp_path_factory, tree):
    import signal

    from llmhost.commands.facts_cmd import collect
    from llmhost.host.facts import Facts

    root = write_snapshot(tmp_path_factory.mktemp("tree"), files={p: None for p in tree if p.startswith("/")})
    for where, (kind, payload) in tree.items():
        target = root / where if where.startswith("cmd/") else root / "root" / where.lstrip("/")
        if target.exists() or target.is_symlink():
            continue
        _place(target, kind, payload)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("replay hung")))
    signal.alarm(30)
    try:
        report = preflight.run(SnapshotHost(root))
        facts = collect(Facts(SnapshotHost(root)))
    finally:
        signal.alarm(0)
    assert report.results and all(r.status in STATUSES for r in report.results)
    assert not [r.id for r in report.results if "could not be evaluated" in r.message]
    assert isinstance(facts["gpus"], list) and facts["driver"]["state"]


# --- GGUF headers: a valid header, mutated -----------------------------------------------------

def _valid_header() -> bytes:
    from test_gguf_header import LLAMA, gguf, tensor

    return gguf(LLAMA, [tensor("token_embd.weight", [64, 100], 0, 0)], pad_data=64 * 100 * 4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=9)),
                      max_size=6),
       cut=st.one_of(st.none(), st.integers(min_value=0, max_value=26000)))
def test_mutated_gguf_headers_give_a_model_or_one_line(tmp_path_factory, edits, cut):
    import tracemalloc

    from llmhost.plan import gguf_header
    from llmhost.errors import LlmhostError

    data = bytearray(_valid_header())
    for offset, raw in edits:
        data[offset:offset + len(raw)] = raw
    path = tmp_path_factory.mktemp("gguf") / "m.gguf"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    tracemalloc.start()
    try:
        header = gguf_header.read(str(path))
        assert header["layers"] > 0 and header["weight_bytes"] >= 0
    except LlmhostError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 8 << 20


# --- endpoint responses: a local server answering whatever it is given ---------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["choices", "usage", "delta", "content", "prompt_tokens", "completion_tokens",
                                          "message", "text", "x"]), inner, max_size=4), max_leaves=12)
_sse = st.lists(_json.map(lambda v: "data: " + json.dumps(v)) | st.sampled_from(["data: [DONE]", "data: {", ": ping",
                                                                                  "event: x", ""]),
                max_size=6).map(lambda lines: ("\n\n".join(lines) + "\n\n").encode())
bodies = st.one_of(_json.map(lambda v: json.dumps(v).encode()), _sse, st.binary(max_size=300))


@settings(max_examples=40, deadline=None)
@given(body=bodies, stream=st.booleans())
def test_bench_reads_any_endpoint_response_without_a_traceback(hostile_endpoint, body, stream):
    from click.testing import CliRunner

    from llmhost.main import cli

    hostile_endpoint.body = body
    hostile_endpoint.content_type = "text/event-stream" if stream else "application/json"
    result = CliRunner().invoke(cli, ["bench", hostile_endpoint.url, "--concurrency", "1", "--requests", "1",
                                      "--timeout", "5", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2)
    if result.exit_code == 2:  # the progress header, then the error on one line
        assert result.output.strip().splitlines()[-1].startswith("llmhost: error: endpoint"), result.output


_metrics = st.lists(st.one_of(
    st.tuples(st.sampled_from(["llamacpp:requests_processing", "llamacpp:requests_deferred", "vllm:num_requests_running",
                               "vllm:num_requests_waiting", "other"]),
              st.sampled_from(["0", "1", "-1", "NaN", "+Inf", "1e309", "x", ""])).map(lambda kv: f"{kv[0]} {kv[1]}"),
    st.text(max_size=40)), max_size=8).map(lambda lines: "\n".join(lines).encode())


@settings(max_examples=30, deadline=None)
@given(body=st.one_of(_metrics, st.binary(max_size=200)))
def test_drain_reads_any_metrics_page_without_a_traceback(hostile_endpoint, body):
    from click.testing import CliRunner

    from llmhost.main import cli

    hostile_endpoint.body = body
    result = CliRunner().invoke(cli, ["runtime", "drain", hostile_endpoint.url, "--timeout", "1"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
