"""Monitoring: the rules and dashboard as the monitoring role renders them, checked by Debian's
promtool and against what the stack really exposes; the GPU exporter on real nvidia-smi captures;
the thermal guard's decisions on real recorded temperature logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REAL, _free_port, debian_tools, write_snapshot
from llmhost import knowledge
from llmhost.errors import LlmhostError
from llmhost.host.hostio import open_snapshot
from llmhost.main import cli
from llmhost.operate import dashboard, exporter, thermal_guard, traces
from llmhost.operate.thermal_guard import Guard, Reading, Settings

ROOT = Path(__file__).parent.parent
THERMAL = Path(__file__).parent / "fixtures" / "thermal"


def _tools() -> Path:
    return debian_tools("prometheus") / "usr" / "bin"


@pytest.fixture(scope="module")
def tools() -> Path:
    return _tools()


def _render(out: Path, *extra: str) -> Path:
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "monitoring-templates.yml"),
                    "-e", f"monitoring_render_dir={out}", *extra], cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return _render(tmp_path_factory.mktemp("monitoring"))


def test_dashboard_metric_names_leave_functions_labels_and_numbers_out():
    expr = ('histogram_quantile(0.95, sum by (le, instance) (rate(vllm:time_to_first_token_seconds_bucket'
            '{instance=~"$instance"}[5m]))) / on (instance) node_memory_MemTotal_bytes * 1e-9')
    assert dashboard.expr_metrics(expr) == {"vllm:time_to_first_token_seconds_bucket", "node_memory_MemTotal_bytes"}


def test_rules_and_scrape_configuration_pass_promtool(rendered, tools):
    for args in (["check", "rules", "llmhost-alerts.yml"], ["check", "config", "--syntax-only", "prometheus.yml"]):
        result = subprocess.run([str(tools / "promtool"), *args], cwd=rendered, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_passes_its_promtool_unit_test(rendered, tools):
    shutil.copy(Path(__file__).parent / "promtool" / "llmhost-alerts.test.yml", rendered)
    result = subprocess.run([str(tools / "promtool"), "test", "rules", "llmhost-alerts.test.yml"], cwd=rendered,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (rendered / "llmhost-alerts.test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (rendered / "llmhost-alerts.yml").read_text()))
    assert defined == tested, defined ^ tested


def test_alert_thresholds_come_from_the_knowledge_base(tmp_path):
    out = _render(tmp_path, "-e", "monitoring_alert_queue_s=45")
    rules = (out / "llmhost-alerts.yml").read_text()
    limits = knowledge.thresholds()
    assert f">= {limits['gpu']['temperature_warn_c']}\n" in rules
    assert "|".join(limits["gpu"]["throttle_fail"]) in rules
    assert "|".join(str(x) for x in limits["xid"]["fail"]) in rules
    assert "for: 45s" in rules


# --- what the dashboard asks for ---------------------------------------------------------------

def dashboard_metrics(path: Path) -> set[str]:
    return dashboard.metric_names(path.read_text())


def _exposed(text: str) -> set[str]:
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _get_when_up(url: str, what: str, tries: int = 100) -> str:
    """GET url once the server just started behind it answers (10 s at most)."""
    for _ in range(tries):
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail(f"{what} did not answer at {url}")


XID_LINE = "[ 5271.421234] NVRM: Xid (PCI:0000:00:1e): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."


@pytest.fixture(scope="module")
def live_scrape(tools, server, tmp_path_factory):
    """Everything the dashboard can read, really running: node_exporter (Debian's build) with
    preflight's and the thermal guard's textfiles, the llmhost exporter on a real Tesla T4 capture
    with an Xid in its kernel log, and the real llama-server after a completion."""
    textfiles = tmp_path_factory.mktemp("textfile")
    snap = write_snapshot(tmp_path_factory.mktemp("snap"), cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text(), "", 0),
        "kernel-log": (XID_LINE + "\n", "", 0)})
    runner = CliRunner()
    result = runner.invoke(cli, ["preflight", "--snapshot", str(snap), "--format", "prometheus",
                                 "--output", str(textfiles / "llmhost_preflight.prom")])
    assert result.exit_code in (0, 1), result.output
    guard = Guard(Settings.from_knowledge())
    reading = Reading("0000:00:1e.0", 90.0, 70.0, 60.0, 70.0)
    guard.observe(reading, 0.0)
    guard.observe(reading, 60.0)
    thermal_guard.write_textfile(str(textfiles), thermal_guard.metrics(guard, [reading], {("0000:00:1e.0", "lower"): 1}))
    port = _free_port()
    node = subprocess.Popen([str(tools / "prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{port}",
                             f"--collector.textfile.directory={textfiles}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        node_text = _get_when_up(f"http://127.0.0.1:{port}/metrics", "node_exporter")
        host, tmp = open_snapshot(str(snap))
        gpu_text = exporter.scrape(lambda: host, server)
        body = json.dumps({"prompt": "Hello", "n_predict": 4}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{server}/completion", data=body), timeout=60).read()
        server_text = _get(f"{server}/metrics")
    finally:
        node.terminate()
        node.wait(timeout=10)
    return {"node": node_text, "gpu": gpu_text, "server": server_text}


def test_every_dashboard_query_names_a_metric_the_stack_exposes(rendered, live_scrape):
    exposed = set().union(*(_exposed(text) for text in live_scrape.values()))
    wanted = dashboard_metrics(rendered / "llmhost-dashboard.json")
    assert {"llmhost_gpu_temperature_celsius", "llamacpp:tokens_predicted_total", "node_cpu_seconds_total",
            "llmhost_preflight_results", "llmhost_gpu_xid_errors_total", "llmhost_thermal_guard_engaged"} <= wanted
    assert wanted - exposed == set()


# vLLM's metric names, from its documentation (docs/design/metrics.md: v0 list and the V1 additions,
# vLLM 0.10): vLLM itself cannot run here.
VLLM_METRICS = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                "vllm:time_per_output_token_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket"}


def test_the_vllm_dashboard_asks_for_vllm_metrics_only(tmp_path, live_scrape):
    out = _render(tmp_path, "-e", "monitoring_model_server_backend=vllm")
    wanted = dashboard_metrics(out / "llmhost-dashboard.json")
    exposed = _exposed(live_scrape["node"]) | _exposed(live_scrape["gpu"])
    assert {m for m in wanted if m.startswith("vllm:")} <= VLLM_METRICS
    assert not any(m.startswith("llamacpp:") for m in wanted)
    assert {m for m in wanted if not m.startswith("vllm:")} <= exposed


# --- the GPU exporter --------------------------------------------------------------------------

def _value(text: str, metric: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(metric + "{") or line.startswith(metric + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{metric}{labels} not exposed")


def test_exporter_reports_a_real_t4_at_x8_of_x16(live_scrape):
    text = live_scrape["gpu"]
    assert _value(text, "llmhost_gpu_reader_up", source="nvidia-smi") == 1
    assert _value(text, "llmhost_gpu_temperature_celsius", gpu="0") == 40
    assert _value(text, "llmhost_gpu_power_draw_watts", gpu="0") == 26.78
    assert _value(text, "llmhost_gpu_power_limit_watts", gpu="0") == 70
    assert _value(text, "llmhost_gpu_pcie_link_width", gpu="0") == 8
    assert _value(text, "llmhost_gpu_pcie_link_width_max", gpu="0") == 16
    assert _value(text, "llmhost_gpu_memory_used_bytes", gpu="0") == 1032 * (1 << 20)
    assert _value(text, "llmhost_gpu_sm_clock_hertz", gpu="0") == 585e6
    # The kernel names the device without its function: 0000:00:1e.0, as every other GPU series has it.
    assert _value(text, "llmhost_gpu_xid_errors_total", address="0000:00:1e.0", xid="79") == 1
    assert _value(text, "llmhost_model_server_ready") == 1


def test_exporter_on_two_p100s_and_a_mig_a100(tmp_path):
    snap = write_snapshot(tmp_path / "p100", cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-tesla-p100-pcie-12gb-x2-375.66.xml").read_text(), "", 0)})
    host, _ = open_snapshot(str(snap))
    text = exporter.scrape(lambda: host, None)
    assert _value(text, "llmhost_gpu_info", gpu="1", name="Tesla P100-PCIE-12GB_2") == 1
    assert _value(text, "llmhost_gpu_ecc_errors_total", gpu="0", type="uncorrected") == 0
    assert "llmhost_model_server_ready" not in text
    assert _value(text, "llmhost_gpu_kernel_log_readable") == 0  # the snapshot has no kernel log: unknown, not zero
    assert "llmhost_gpu_xid_errors_total" not in text
    snap = write_snapshot(tmp_path / "a100", cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-a100-sxm4-80gb-mig-535.54.03.xml").read_text(), "", 0)})
    host, _ = open_snapshot(str(snap))
    text = exporter.scrape(lambda: host, "http://127.0.0.1:9")
    assert _value(text, "llmhost_gpu_info", gpu="0", driver="535.54.03") == 1
    assert _value(text, "llmhost_model_server_ready") == 0


def test_exporter_without_any_gpu_reader_says_so(tmp_path):
    snap = write_snapshot(tmp_path / "s", cmds={"nvidia-smi-q-x": (
        (REAL / "nvidia-smi-err-no-driver.txt").read_text(), "", 9)})
    host, _ = open_snapshot(str(snap))
    text = exporter.scrape(lambda: host, None)
    assert _value(text, "llmhost_gpu_reader_up", source="none") == 0
    assert "llmhost_gpu_temperature_celsius" not in text


def test_exporter_serves_metrics_over_http_and_nothing_else(tmp_path):
    snap = write_snapshot(tmp_path / "s", cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text(), "", 0)})
    host, _ = open_snapshot(str(snap))
    port = _free_port()
    threading.Thread(target=exporter.serve, args=("127.0.0.1", port, lambda: host, None), daemon=True).start()
    text = _get_when_up(f"http://127.0.0.1:{port}/metrics", "the exporter")
    assert _value(text, "llmhost_gpu_temperature_celsius", gpu="0") == 40
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"http://127.0.0.1:{port}/")
    assert err.value.code == 404


@pytest.mark.parametrize("args, message", [
    (["exporter", "--listen", "9835"], "expected ADDRESS:PORT"),
    (["exporter", "--listen", "127.0.0.1:70000"], "expected ADDRESS:PORT"),
    (["exporter", "--model-server", "localhost:8080", "--once"], "expected http://HOST:PORT"),
    (["exporter", "--model-server", "http://a b", "--once"], "expected http://HOST:PORT"),
    (["exporter", "--model-server", "http://user:secret@h:1", "--once"], "no path, query or credentials"),
    (["exporter", "--model-server", "http://h:1/v1?x=1", "--once"], "no path, query or credentials"),
    (["exporter", "--listen", "[127.0.0.1:9835"], "expected ADDRESS:PORT"),
    (["thermal-guard", "--hold", "nan", "--once"], "expected a finite number"),
    (["thermal-guard", "--interval", "nan", "--once"], "expected a finite number"),
    (["exporter", "--snapshot", "/nonexistent", "--once"], "does not exist"),
    (["thermal-guard", "--threshold", "200", "--once"], "40<=x<=110"),
    (["thermal-guard", "--trace-limits", "1,2,3", "--once"], "only with --trace"),
])
def test_operate_commands_refuse_bad_input_in_one_line(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


# --- the thermal guard -------------------------------------------------------------------------

def test_guard_steps_down_only_after_holding_hot_and_never_below_the_minimum():
    guard = Guard(Settings(threshold_c=85, hysteresis_c=5, hold_s=30, cool_s=120, step_ratio=0.1))
    limit, actions = 300.0, []
    for t in range(0, 600, 5):
        action = guard.observe(Reading("g", 90.0, limit, 250.0, 350.0), float(t))
        if action:
            actions.append(action)
            limit = action.to_w if action.kind == "lower" else limit
    lowers = [a for a in actions if a.kind == "lower"]
    assert lowers[0].from_w == 300 and lowers[0].to_w == 290  # a tenth of the 100 W range
    assert [a.to_w for a in lowers] == [290, 280, 270, 260, 250]
    assert limit == 250 and [a.kind for a in actions].count("floor") == 1  # said once, at the card's minimum
    assert guard.engaged("g")


def test_guard_gives_power_back_in_steps_after_cooling_and_forgets_the_gpu():
    guard = Guard(Settings(threshold_c=85, hysteresis_c=5, hold_s=0, cool_s=60, step_ratio=0.5))
    first = guard.observe(Reading("g", 86.0, 300.0, 100.0, 300.0), 0.0)
    assert (first.kind, first.to_w) == ("lower", 200.0)
    assert guard.observe(Reading("g", 82.0, 200.0, 100.0, 300.0), 10.0) is None  # not cool enough (>= 80)
    assert guard.observe(Reading("g", 79.0, 200.0, 100.0, 300.0), 20.0) is None  # cool, not for long
    back = guard.observe(Reading("g", 79.0, 200.0, 100.0, 300.0), 80.0)
    assert (back.kind, back.to_w) == ("raise", 300.0) and not guard.engaged("g")
    assert guard.observe(Reading("g", 60.0, 300.0, 100.0, 300.0), 500.0) is None  # never above what it found


def test_guard_remembers_what_to_give_back_across_a_restart(tmp_path):
    state = tmp_path / "guard.json"
    guard = Guard(Settings(threshold_c=85, hold_s=0, cool_s=0))
    guard.observe(Reading("g", 95.0, 300.0, 100.0, 300.0), 0.0)
    thermal_guard.save_state(str(state), guard)
    again = Guard(Settings(threshold_c=85, hold_s=0, cool_s=0))
    again.restore(thermal_guard.load_state(str(state)))
    action = again.observe(Reading("g", 50.0, 280.0, 100.0, 300.0), 1.0)
    assert (action.kind, action.to_w) == ("raise", 300.0)
    state.write_text("not json")
    assert thermal_guard.load_state(str(state)) == {}


def _hot_spans(samples, threshold):
    """For each sample, how long the temperature had stayed at or above the threshold."""
    since, out = None, []
    for s in samples:
        since = (since if since is not None else s.t) if s.temperature_c >= threshold else None
        out.append(s.t - since if since is not None else None)
    return out


@pytest.mark.parametrize("trace, limits, threshold", [
    ("rtx5070-laptop_nvidia-smi-dmon.txt", "60,100,115", 60),         # GeForce laptop, 52-75 °C under load
    ("geforce-desktop_query-gpu_idle-to-load_1s.csv", "400,575,600", 45),  # desktop card, 33-57 °C
])
def test_guard_on_real_recorded_temperatures(trace, limits, threshold):
    settings = Settings(threshold_c=threshold, hysteresis_c=5, hold_s=10, cool_s=20, step_ratio=0.1)
    samples = traces.load(str(THERMAL / trace), traces.parse_limits(limits))
    low, start, high = traces.parse_limits(limits)
    records = [json.loads(line) for line in traces.replay(settings, samples)]
    spans = dict(zip([round(s.t, 3) for s in samples], _hot_spans(samples, threshold)))
    temps = {round(s.t, 3): s.temperature_c for s in samples}
    assert any(r["action"] == "lower" for r in records), "the trace crosses the threshold for longer than the hold"
    limit = start
    for r in records:
        assert r["from_w"] == limit
        if r["action"] == "lower":
            assert temps[r["time"]] >= threshold and spans[r["time"]] >= settings.hold_s
            assert low <= r["to_w"] < limit
        elif r["action"] == "raise":
            assert temps[r["time"]] <= threshold - settings.hysteresis_c
            assert limit < r["to_w"] <= start
        limit = r["to_w"]
    # Spikes shorter than the hold never act, at any threshold the trace crosses.
    for level in range(int(min(temps.values())), int(max(temps.values())) + 2):
        longest = max((x for x in _hot_spans(samples, level) if x is not None), default=None)
        acted = any(json.loads(line)["action"] == "lower"
                    for line in traces.replay(Settings(threshold_c=level, hold_s=10, cool_s=20), samples))
        assert acted == (longest is not None and longest >= 10), level


def test_a100_trace_at_millisecond_polling_is_read_with_its_own_clock():
    samples = traces.load(str(THERMAL / "a100-pcie-40gb_query-gpu_step-load_lms.csv"), (150.0, 250.0, 250.0))
    assert 4.0 < samples[-1].t < 7.0 and len(samples) > 300  # ~13 ms apart, not one a second
    assert min(s.temperature_c for s in samples) == 37 and max(s.temperature_c for s in samples) == 46


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("hello,world\n1,2\n", "neither an nvidia-smi --query-gpu CSV"),
    ("timestamp, temperature.gpu\n2024/01/01 00:00:00.000, 50\n", "give --trace-limits"),
    ("timestamp, temperature.gpu\nx, N/A\n", "no temperature readings"),
    ("# gpu pwr\n0 10\n", "neither"),
])
def test_trace_input_errors_are_one_line(tmp_path, content, message):
    path = tmp_path / "trace.csv"
    path.write_text(content)
    with pytest.raises(LlmhostError, match=message):
        traces.load(str(path))
    result = CliRunner().invoke(cli, ["thermal-guard", "--trace", str(path)])
    assert result.exit_code == 2 and message in result.output and "\n" not in result.output.strip()


@pytest.mark.parametrize("text", ["1,2", "a,b,c", "300,200,100", "0,1,2"])
def test_trace_limits_must_be_an_ordered_range(text):
    with pytest.raises(LlmhostError, match="--trace-limits"):
        traces.parse_limits(text)


def test_the_engine_reads_a_live_host_as_an_unprivileged_user():
    """As the exporter's unit runs it (DynamicUser): a directory it may not enter (the model directory's
    parent is 0750 on a served host) reads as absent, never as a traceback."""
    if os.geteuid() != 0 or not shutil.which("su"):
        pytest.skip("needs root to drop to nobody")
    work = Path(tempfile.mkdtemp(prefix="llmhost-nobody-", dir="/tmp"))
    try:
        work.chmod(0o755)
        subprocess.run([sys.executable, "-m", "llmhost.bundle", str(work / "llmhost.pyz")], check=True,
                       capture_output=True)
        (work / "llmhost.pyz").chmod(0o644)
        (work / "locked").mkdir(mode=0o700)
        for args in (f"preflight --json --only storage.model_disk --model-dir {work}/locked/models", "exporter --once"):
            result = subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", f"python3 {work}/llmhost.pyz {args}"],
                                    capture_output=True, text=True, timeout=120)
            assert "Traceback" not in result.stderr, result.stderr
            assert result.returncode in (0, 1), result.stderr
        assert "llmhost_gpu_reader_up" in result.stdout
    finally:
        shutil.rmtree(work)


def test_health_flags_are_exported_as_zero_or_one(tmp_path):
    xml = (REAL / "nvsmi-a100-sxm4-80gb-mig-535.54.03.xml").read_text()
    bad = re.sub(r"<remapped_rows>.*?</remapped_rows>", "<remapped_rows><remapped_row_corr>0</remapped_row_corr>"
                 "<remapped_row_unc>3</remapped_row_unc><remapped_row_pending>Yes</remapped_row_pending>"
                 "<remapped_row_failure>Yes</remapped_row_failure></remapped_rows>", xml, flags=re.S)
    host, _ = open_snapshot(str(write_snapshot(tmp_path / "s", cmds={"nvidia-smi-q-x": (bad, "", 0)})))
    text = exporter.scrape(lambda: host, None)
    assert _value(text, "llmhost_gpu_remapped_rows_failure", gpu="0") == 1
    assert _value(text, "llmhost_gpu_remapped_rows_pending", gpu="0") == 1
    p100 = write_snapshot(tmp_path / "p", cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-tesla-p100-pcie-12gb-x2-375.66.xml").read_text(), "", 0)})
    host, _ = open_snapshot(str(p100))
    assert _value(exporter.scrape(lambda: host, None), "llmhost_gpu_retired_pages_pending", gpu="0") == 0


def test_hostile_nvml_readings_are_left_out_not_exported(tmp_path):
    record = {"gpus": [{"address": "0000:01:00.0", "name": "bad\ud800name\n\"x", "temperature_c": float("nan"),
                        "utilization_pct": 10 ** 400, "power_draw_w": float("inf"), "vram_mib": 81559}]}
    snap = write_snapshot(tmp_path / "s", cmds={"nvml": (json.dumps(record), "", 0)})
    host, _ = open_snapshot(str(snap))
    text = exporter.scrape(lambda: host, None)
    assert "llmhost_gpu_temperature_celsius" not in text and "llmhost_gpu_utilization_ratio" not in text
    assert "llmhost_gpu_power_draw_watts" not in text
    assert _value(text, "llmhost_gpu_memory_total_bytes", gpu="0") == 81559 * (1 << 20)
    assert 'name="bad?name\\n\\"x"' in text  # one escaped line, encodable
    deep = write_snapshot(tmp_path / "d", cmds={"nvml": ("[" * 100000, "", 0)})
    host, _ = open_snapshot(str(deep))
    assert _value(exporter.scrape(lambda: host, None), "llmhost_gpu_reader_up", source="none") == 0


def test_a_model_server_that_answers_garbage_or_drips_is_not_ready_and_the_scrape_stays_bounded():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def answer():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(1024)
            if port % 1 == 0:  # first garbage, then a byte at a time
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    start = time.monotonic()
    lines = exporter.model_server_lines(f"http://127.0.0.1:{port}", timeout=1.0)
    assert any(line.endswith(" 0") and line.startswith("llmhost_model_server_ready") for line in lines)
    assert time.monotonic() - start < 3
    server.close()

    drip = socket.socket()
    drip.bind(("127.0.0.1", 0))
    drip.listen(1)

    def slow():
        conn, _ = drip.accept()
        conn.recv(1024)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.5)

    threading.Thread(target=slow, daemon=True).start()
    start = time.monotonic()
    lines = exporter.model_server_lines(f"http://127.0.0.1:{drip.getsockname()[1]}", timeout=1.0)
    assert time.monotonic() - start < 2.5  # bounded as a whole, not per read
    assert any(line.startswith("llmhost_model_server_ready") and line.endswith(" 0") for line in lines)
    drip.close()


def test_guard_never_gives_back_a_remembered_limit_outside_the_card_or_below_now():
    for saved in (150.0, 5.0, 10000.0, float("nan")):
        guard = Guard(Settings(threshold_c=85, hold_s=0, cool_s=0))
        guard.restore({"g": saved})
        assert guard.observe(Reading("g", 40.0, 300.0, 100.0, 350.0), 0.0) is None, saved
        assert not guard.engaged("g")


def test_guard_owes_a_failed_last_step_up_again():
    guard = Guard(Settings(threshold_c=85, hold_s=0, cool_s=0, step_ratio=1.0))
    lower = guard.observe(Reading("g", 90.0, 300.0, 100.0, 300.0), 0.0)
    assert lower.to_w == 100.0
    back = guard.observe(Reading("g", 40.0, 100.0, 100.0, 300.0), 1.0)
    assert back.kind == "raise" and not guard.engaged("g")
    guard.failed(back)  # nvidia-smi -pl did not take it
    again = guard.observe(Reading("g", 40.0, 100.0, 100.0, 300.0), 2.0)
    assert (again.kind, again.to_w) == ("raise", 300.0)


def test_guard_loop_reports_a_broken_textfile_or_state_directory_and_carries_on(tmp_path):
    lines = []
    reads = iter([[{"address": "g", "temperature_c": 95.0, "power_limit_w": 300.0, "power_min_w": 100.0,
                    "power_max_w": 300.0}]] * 3)
    thermal_guard.run(Settings(threshold_c=85, hold_s=0, cool_s=0), lambda: next(reads), 0.5,
                      str(tmp_path / "missing"), True, lines.append, iterations=2,
                      state_file=str(tmp_path / "missing" / "state.json"))
    events = [json.loads(line)["event"] for line in lines]
    assert events.count("thermal_guard_metrics_not_written") == 2 and "thermal_guard" in events


def test_preflight_output_is_whole_or_absent(tmp_path, snap):
    root = snap()
    target = tmp_path / "report.prom"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    runner = CliRunner()
    ok = runner.invoke(cli, ["preflight", "--snapshot", str(root), "--format", "prometheus", "--output", str(target)])
    assert ok.exit_code in (0, 1) and "llmhost_preflight_results" in target.read_text()
    for bad, message in ((tmp_path, "not a regular file"), (Path("."), "expected a file name"),
                         (tmp_path / "nodir" / "r.prom", "No such file"),
                         (Path("/dev/null"), "not a regular file")):
        result = runner.invoke(cli, ["preflight", "--snapshot", str(root), "--output", str(bad)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    link = tmp_path / "link.prom"
    link.symlink_to(victim)
    result = runner.invoke(cli, ["preflight", "--snapshot", str(root), "--output", str(link)])
    assert result.exit_code == 2 and victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.prom", "report.prom", "snap", "victim"]


@pytest.mark.parametrize("limits", ["100,300,inf", "nan,1,2", "1,,2"])
def test_trace_limits_must_be_finite(limits):
    with pytest.raises(LlmhostError, match="--trace-limits"):
        traces.parse_limits(limits)


def test_trace_must_be_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LlmhostError, match="not a regular file"):
        traces.load(str(fifo))


def test_exporter_stopped_by_systemd_removes_the_snapshot_it_unpacked(tmp_path):
    snap = write_snapshot(tmp_path / "snap", cmds={
        "nvidia-smi-q-x": ((REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text(), "", 0)})
    archive = tmp_path / "snap.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(snap, arcname="snap")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "llmhost"), "exporter", "--snapshot", str(archive),
                             "--listen", f"127.0.0.1:{port}"], env={**os.environ, "TMPDIR": str(scratch)},
                            stderr=subprocess.PIPE, text=True)
    try:
        text = _get_when_up(f"http://127.0.0.1:{port}/metrics", "the exporter")
        assert _value(text, "llmhost_gpu_temperature_celsius") == 40
        assert list(scratch.iterdir())  # unpacked while serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0, proc.stderr.read()
    assert list(scratch.iterdir()) == []
