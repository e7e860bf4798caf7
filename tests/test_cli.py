"""The llmhost command line: subcommands, exit codes, formats, snapshots taken live and replayed."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import pytest
from click.testing import CliRunner

from llmhost.checks import preflight
from llmhost.host import snapshot
from llmhost.host.hostio import SnapshotHost
from llmhost.main import cli

from conftest import smi


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_subcommands(runner):
    out = runner.invoke(cli, ["--help"]).output
    for command in ("preflight", "snapshot", "compat"):
        assert command in out


def test_unknown_subcommand_and_flag_are_usage_errors(runner):
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2
    assert runner.invoke(cli, ["preflight", "--frobnicate"]).exit_code == 2


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "llmhost" in result.output


def test_unknown_check_id_is_one_line_exit_2(runner):
    result = runner.invoke(cli, ["preflight", "--skip", "gpu.nope"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "gpu.nope" in result.output


def test_json_format_schema_and_exit_1_on_fail(runner, snap):
    root = snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    result = runner.invoke(cli, ["preflight", "--snapshot", str(root), "--json"])
    assert result.exit_code == 1  # x8 of x16
    data = json.loads(result.output)
    assert data["schema"] == "llmhost.preflight/1"
    assert set(data["summary"]) == {"pass", "warn", "fail", "skip"}
    assert sum(data["summary"].values()) == len(data["results"])
    assert set(data["results"][0]) == {"id", "status", "subject", "message", "remedy", "data"}
    assert data["host"]["hostname"] == "gpu01" and data["host"]["os"] == "debian-12"


def test_exit_0_when_nothing_failed_and_strict_turns_warnings_into_1(runner, snap):
    root = snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    args = ["preflight", "--snapshot", str(root), "--skip", "pcie.link_width"]
    assert runner.invoke(cli, args).exit_code == 0
    assert runner.invoke(cli, args + ["--strict"]).exit_code == 1


def test_prometheus_one_sample_per_result(runner, snap):
    root = snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    out = runner.invoke(cli, ["preflight", "--snapshot", str(root), "--format", "prometheus"]).output
    samples = [line for line in out.splitlines() if line.startswith("llmhost_preflight_check_status{")]
    data = json.loads(runner.invoke(cli, ["preflight", "--snapshot", str(root), "--json"]).output)
    assert len(samples) == len(data["results"])
    assert 'check="pcie.link_width",subject="0000:00:1e.0",status="fail",host="gpu01"} 2' in out
    assert "# TYPE llmhost_preflight_check_status gauge" in out


def test_text_has_no_colour_when_not_a_terminal(runner, snap):
    root = snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    out = runner.invoke(cli, ["preflight", "--snapshot", str(root)]).output
    assert "\033[" not in out
    assert out.rstrip().splitlines()[-1].startswith(tuple("0123456789"))  # summary last
    assert "FAIL  pcie.link_width" in out and "-> reseat" in out


def test_unreadable_snapshot_exit_2(runner, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    for path in (str(bad), str(tmp_path / "missing"), str(tmp_path)):
        result = runner.invoke(cli, ["preflight", "--snapshot", path])
        assert result.exit_code == 2, path
        assert result.output.startswith("llmhost: error: snapshot")


def test_live_capture_replays_to_identical_results(tmp_path):
    host = snapshot.capture()
    live = preflight.run(host, source="live")
    target = snapshot.write(host, str(tmp_path / "snap"))
    replayed = preflight.run(SnapshotHost(target), source="replay")
    strip = lambda report: [(r.id, r.status, r.subject, r.message, r.data) for r in report.results]  # noqa: E731
    assert strip(live) == strip(replayed)
    assert (target / "cmd" / "uname-r.out").exists() and (target / "root" / "proc" / "meminfo").exists()
    meta = json.loads((target / "snapshot.json").read_text())
    assert meta["schema"] == "llmhost.snapshot/1" and "nvidia-smi-q-x" in meta["commands"]


def test_snapshot_cli_tarball_round_trip(runner, tmp_path):
    archive = tmp_path / "host.tar.gz"
    result = runner.invoke(cli, ["snapshot", str(archive)])
    assert result.exit_code == 0, result.output
    with tarfile.open(archive) as tar:
        assert any(name.endswith("snapshot.json") for name in tar.getnames())
    replay = runner.invoke(cli, ["preflight", "--snapshot", str(archive), "--json"])
    assert json.loads(replay.output)["host"]["source"].startswith("snapshot")


def test_redact_drops_serials_and_uuids():
    xml = b"<gpu><serial>1321120031234</serial><uuid>GPU-5e1a2b3c-1111-2222-3333-444455556666</uuid></gpu>"
    log = b"NVRM: GPU at PCI:0000:01:00: GPU-5e1a2b3c-1111-2222-3333-444455556666"
    assert b"1321120031234" not in snapshot.redact(xml)
    assert b"5e1a2b3c" not in snapshot.redact(log)
    assert b'"serial": null' in snapshot.redact(b'{"serial": "1321120031234"}')
    lspci = b"\tCapabilities: [100 v1] Device Serial Number 48-b0-2d-ff-ff-3a-c2-01\n"
    kernel = b"NVRM: GPU Board Serial Number: 1321519028451\n"
    assert snapshot.redact(lspci) == b"\tCapabilities: [100 v1] Device Serial Number REDACTED\n"
    assert snapshot.redact(kernel) == b"NVRM: GPU Board Serial Number: REDACTED\n"


@pytest.mark.parametrize("make,needle", [(lambda p: (p.write_text("x"), p)[1], "already exists"),
                                         (lambda p: p.parent / "file" / "sub.tar.gz", "cannot be written")])
def test_snapshot_never_overwrites_and_says_why_it_cannot_write(runner, tmp_path, make, needle):
    (tmp_path / "file").write_text("a file, not a directory")
    target = make(tmp_path / "host.tar.gz")
    result = runner.invoke(cli, ["snapshot", str(target)])
    assert result.exit_code == 2 and needle in result.output and len(result.output.strip().splitlines()) == 1


def test_live_on_this_gpu_less_machine_says_so(runner):
    result = runner.invoke(cli, ["preflight", "--json"])
    data = json.loads(result.output)
    present = next(r for r in data["results"] if r["id"] == "gpu.present")
    assert present["status"] == "fail" and "no NVIDIA GPU" in present["message"]
    assert result.exit_code == 1


def test_zipapp_bundle_is_reproducible_and_runs(tmp_path):
    from llmhost import bundle
    first = bundle.build(str(tmp_path / "a.pyz")).read_bytes()
    second = bundle.build(str(tmp_path / "b.pyz")).read_bytes()
    assert first == second
    out = subprocess.run([sys.executable, "-I", str(tmp_path / "a.pyz"), "preflight", "--only", "os.supported", "--json"],
                         capture_output=True, text=True, check=False, cwd=tmp_path)
    assert json.loads(out.stdout)["results"][0]["id"] == "os.supported"
