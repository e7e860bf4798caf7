"""Snapshots as an adversary or a careless user makes them: each replays within bounded time and
memory to skips and verdicts, or is refused in one line with exit 2; never a traceback or a hang."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from conftest import write_snapshot


def _preflight(path, timeout=120):
    """The real command in its own process, so a hang fails the test instead of blocking it."""
    proc = subprocess.run([sys.executable, "-m", "llmhost", "preflight", "--snapshot", str(path), "--json"],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_a_symlink_loop_is_a_file_that_is_not_there(tmp_path):
    snap = write_snapshot(tmp_path / "s", files={"/proc/meminfo": None})
    os.symlink("meminfo", snap / "root" / "proc" / "meminfo")
    proc = _preflight(snap)
    assert proc.returncode in (0, 1)
    memory = [r for r in json.loads(proc.stdout)["results"] if r["id"] == "memory.ram_vs_vram"]
    assert memory and memory[0]["status"] == "skip"


def test_a_fifo_does_not_hang_the_replay(tmp_path):
    snap = write_snapshot(tmp_path / "s", files={"/proc/cpuinfo": None}, cmds={"uname-r": None})
    os.mkfifo(snap / "root" / "proc" / "cpuinfo")
    os.mkfifo(snap / "cmd" / "uname-r.out")
    assert _preflight(snap, timeout=60).returncode in (0, 1)


def test_a_directory_where_a_command_result_belongs(tmp_path):
    snap = write_snapshot(tmp_path / "s")
    (snap / "cmd" / "dkms-status.rc").mkdir()
    (snap / "cmd" / "lspci-vvv.out").mkdir()
    assert _preflight(snap).returncode in (0, 1)


@pytest.mark.parametrize("meta,needle", [("[1, 2]", "is not a JSON object (got list)"), ('"x"', "got str"),
                                         ("{not json", "is not valid JSON"), ('{"schema": "other/9"}', "'other/9'")])
def test_a_bad_snapshot_json_is_one_line(tmp_path, meta, needle):
    snap = write_snapshot(tmp_path / "s")
    (snap / "snapshot.json").write_text(meta)
    proc = _preflight(snap)
    assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_replay_caps_a_huge_file_as_live_does(tmp_path):
    from llmhost.host.hostio import READ_CAP, SnapshotHost

    snap = write_snapshot(tmp_path / "s")
    (snap / "root" / "proc" / "cpuinfo").write_bytes(b"x" * (READ_CAP * 3))
    assert len(SnapshotHost(snap).read_bytes("/proc/cpuinfo")) == READ_CAP


def test_an_archive_that_unpacks_too_big_is_refused_before_it_is_written(tmp_path):
    class Zeros(io.RawIOBase):
        def __init__(self, n):
            self.left = n

        def readable(self):
            return True

        def readinto(self, buffer):
            count = min(len(buffer), self.left)
            buffer[:count] = b"\0" * count
            self.left -= count
            return count

    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("root/proc/meminfo")
        info.size = 300 << 20
        archive.addfile(info, io.BufferedReader(Zeros(info.size)))
    proc = _preflight(bomb)
    assert proc.returncode == 2 and "more than" in proc.stderr and "MiB" in proc.stderr


def test_an_archive_with_a_link_out_of_it_is_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        info = tarfile.TarInfo("root/etc/os-release")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        archive.addfile(info)
    proc = _preflight(evil)
    assert proc.returncode == 2 and "not a readable .tar.gz" in proc.stderr


def test_an_empty_snapshot_option_is_refused(tmp_path):
    proc = _preflight("")
    assert proc.returncode == 2 and "'--snapshot': is empty" in proc.stderr


def test_nvml_json_with_values_of_the_wrong_type_reads_as_unknown(tmp_path):
    nvml = {"driver_version": ["550"], "cuda_version": 12.4, "gpus": [
        {"address": ["0000:01:00.0"], "name": {"x": 1}, "vram_mib": "81559", "temperature_c": True},
        {"address": "0000:02:00.0", "name": ["H100"], "vram_mib": 81559, "throttle": {"hw_slowdown": "yes"}},
        "not a gpu", None]}
    snap = write_snapshot(tmp_path / "s", cmds={"nvml": (json.dumps(nvml), "", 0)})
    proc = _preflight(snap)
    assert proc.returncode in (0, 1)
    plan = subprocess.run([sys.executable, "-m", "llmhost", "plan", "--params", "8B", "--quant", "Q4_K_M",
                           "--snapshot", str(snap), "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in plan.stderr and plan.returncode in (0, 1)
    assert json.loads(plan.stdout)["host"]["gpus"] == [81559 << 20]  # only the well-typed record counts
