"""storage.model_disk: the model directory's disk judged, and a better local disk named when it is unfit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import replay, results
from llmhost.main import cli
from llmhost.host.parsers import system

CAPTURED = Path(__file__).parent / "fixtures" / "captured"
GIB = 1 << 30
HEADER = "Filesystem 1-blocks Used Available Capacity Mounted on\n"


def df_row(device: str, mount: str, available_gib: float) -> str:
    available = int(available_gib * GIB)
    return f"{device} {available * 2} {available} {available} 50% {mount}\n"


def rotational(name: str, spins: bool) -> dict[str, str]:
    return {f"/sys/block/{name}/queue/rotational": "1\n" if spins else "0\n"}


# A two-disk GPU server: the OS on a SATA hard disk, a data NVMe at /data; plus what must never be chosen.
SERVER_FILES = {**rotational("sda", True), **rotational("nvme0n1", False), **rotational("sdb", False),
                "/proc/mounts": "/dev/sda2 / ext4 rw,relatime 0 0\n/dev/nvme0n1 /data xfs rw,noatime 0 0\n"
                                "/dev/sdb1 /archive ext4 ro,relatime 0 0\n"}
SERVER_DF = (HEADER + df_row("/dev/sda2", "/", 200) + df_row("/dev/sda1", "/boot", 900)
             + df_row("/dev/nvme0n1", "/data", 1500) + df_row("tmpfs", "/dev/shm", 3000)
             + df_row("/dev/loop3", "/snap/core/1", 5000) + df_row("/dev/sdb1", "/archive", 8000))


def model_disk(snap, df_local: str, model_df: str, files=None, **kwargs):
    root = snap(files={**SERVER_FILES, **(files or {})},
                cmds={"df-local": (df_local, "", 0), "df-model-dir": (HEADER + model_df, "", 0)})
    return results(replay(root, only=("storage.model_disk",), **kwargs), "storage.model_disk")[0]


def test_spinning_root_gives_way_to_the_data_nvme(snap):
    found = model_disk(snap, SERVER_DF, df_row("/dev/sda2", "/", 200))
    assert found.status == "warn"
    assert found.data["model_dir"] == "/data/llmhost/models"
    assert "/dev/nvme0n1 (nvme, 1500.0 GiB free)" in found.message and "spinning" in found.message


def test_fixed_model_dir_is_judged_alone(snap):
    found = model_disk(snap, SERVER_DF, df_row("/dev/sda2", "/", 200), model_dir_fixed=True)
    assert found.status == "warn" and found.remedy == "put models on NVMe or SSD"
    assert found.data["model_dir"] == "/var/lib/llmhost/models"


def test_no_room_moves_the_model_to_a_disk_with_room_but_never_to_boot_snap_tmpfs_or_read_only(snap):
    df = (HEADER + df_row("/dev/nvme0n1p2", "/", 30) + df_row("/dev/nvme0n1p1", "/boot", 900)
          + df_row("tmpfs", "/dev/shm", 3000) + df_row("/dev/loop3", "/snap/core/1", 5000)
          + df_row("/dev/sdb1", "/archive", 8000) + df_row("/dev/sdc1", "/scratch", 120))
    files = {**rotational("nvme0n1", False), **rotational("sdc", True)}
    found = model_disk(snap, df, df_row("/dev/nvme0n1p2", "/", 30), files=files, model_bytes=40 * GIB)
    assert found.status == "warn" and "needs 40.0 GiB" in found.message
    # A spinning disk with room beats a fast one without: the model has to fit.
    assert found.data["model_dir"] == "/scratch/llmhost/models"


def test_nothing_with_room_fails_and_names_the_knob(snap):
    found = model_disk(snap, SERVER_DF, df_row("/dev/sda2", "/", 200), model_bytes=1600 * GIB)
    assert found.status == "fail" and "preflight_model_dir" in found.remedy
    assert found.data["model_dir"] == "/var/lib/llmhost/models"


def test_fast_root_with_room_passes_and_stays(snap):
    df = HEADER + df_row("/dev/nvme0n1p2", "/", 300) + df_row("/dev/nvme1n1", "/data", 3000)
    files = {**rotational("nvme0n1", False), **rotational("nvme1n1", False)}
    found = model_disk(snap, df, df_row("/dev/nvme0n1p2", "/", 300), files=files, model_bytes=40 * GIB)
    assert found.status == "pass" and found.data["model_dir"] == "/var/lib/llmhost/models"


def test_the_disk_already_holding_models_keeps_them_although_another_has_more_room(snap):
    # Storing a 140 GB model on /data1 left /data2 with more free space: the choice must not move.
    df = (HEADER + df_row("/dev/sda2", "/", 50) + df_row("/dev/nvme0n1", "/data1", 800)
          + df_row("/dev/nvme1n1", "/data2", 900))
    files = {**rotational("nvme1n1", False)}
    fresh = model_disk(snap, df, df_row("/dev/sda2", "/", 50), files=files)
    assert fresh.data["model_dir"] == "/data2/llmhost/models"
    found = model_disk(snap, df, df_row("/dev/sda2", "/", 50),
                       files={**files, "/data1/llmhost/models/llama-70b-q4.gguf": ""})
    assert found.data["model_dir"] == "/data1/llmhost/models"


def test_captured_single_disk_vm_has_no_alternative(snap):
    df = (CAPTURED / "df-local-debian12-vm.txt").read_text()
    mounts = (CAPTURED / "proc-mounts-debian12-vm.txt").read_text()
    rows = system.df_table(df)
    assert [r["mount"] for r in rows if r["device"] == "/dev/vda"] == ["/"]
    root_row = next(line for line in df.splitlines(True) if line.endswith(" /\n"))
    found = model_disk(snap, df, root_row, files={"/proc/mounts": mounts, **rotational("vda", True)})
    assert found.status == "warn" and found.data["model_dir"] == "/var/lib/llmhost/models"
    assert found.remedy == "put models on NVMe or SSD"


def test_df_mount_points_with_spaces_and_octal_escapes_in_proc_mounts():
    rows = system.df_table(HEADER + "/dev/sdb1 1000 10 990 1% /mnt/model store\n")
    assert rows[0]["mount"] == "/mnt/model store" and rows[0]["available"] == 990
    assert system.mount_options("/dev/sdb1 /mnt/model\\040store ext4 ro,noatime 0 0\n") == {
        "/mnt/model store": {"ro", "noatime"}}
    with pytest.raises(system.ParseError):
        system.df_table(HEADER + "/dev/sdb1 lots 10 990 1% /mnt\n")


def test_cli_reports_the_choice_in_json_and_fixed_model_dir_keeps_the_given_one(snap):
    root = snap(files=SERVER_FILES, cmds={"df-local": (SERVER_DF, "", 0),
                                          "df-model-dir": (HEADER + df_row("/dev/sda2", "/", 200), "", 0)})
    args = ["preflight", "--snapshot", str(root), "--only", "storage.model_disk", "--json"]
    chosen = json.loads(CliRunner().invoke(cli, args).output)["results"][0]["data"]["model_dir"]
    kept = json.loads(CliRunner().invoke(cli, args + ["--fixed-model-dir"]).output)["results"][0]["data"]["model_dir"]
    assert (chosen, kept) == ("/data/llmhost/models", "/var/lib/llmhost/models")
