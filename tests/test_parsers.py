"""Parsers against real outputs captured on real machines (tests/fixtures/real, see SOURCES.md)."""

from __future__ import annotations

import pytest

from llmhost.host.parsers import ParseError, nvsmi, system, topo
from llmhost.host.parsers.pci import gen_from_speed, normalize_address, parse_lspci

from conftest import REAL


def test_t4_new_schema_x8_of_x16_and_small_bar1():
    data = nvsmi.parse((REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text())
    assert (data["driver_version"], data["cuda_version"], data["attached_gpus"]) == ("515.105.01", "11.7", 1)
    (gpu,) = data["gpus"]
    assert gpu["address"] == "0000:00:1e.0"  # 8-digit domain and upper-case bus normalised
    assert (gpu["link_width_current"], gpu["link_width_max"]) == (8, 16)
    assert (gpu["link_gen_current"], gpu["link_gen_max"]) == (3, 3)
    assert (gpu["bar1_mib"], gpu["vram_mib"]) == (256, 15360)
    assert gpu["persistence_mode"] is False
    assert gpu["architecture"] == "turing"
    assert gpu["ecc_enabled"] is True and gpu["ecc_corrected"] == 0 and gpu["retired_pages"] == 0
    assert gpu["power_limit_w"] == 70.0 and gpu["power_min_w"] == 60.0
    assert gpu["slowdown_c"] == 93.0 and gpu["temperature_c"] == 40.0


def test_a100_mig_schema_v12_reads_the_gpu_not_its_mig_instances():
    data = nvsmi.parse((REAL / "nvsmi-a100-sxm4-80gb-mig-535.54.03.xml").read_text())
    assert data["attached_gpus"] == 4 and len(data["gpus"]) == 1  # trimmed capture, as SOURCES.md says
    gpu = data["gpus"][0]
    assert gpu["vram_mib"] == 81920  # not a MIG instance's 19968 MiB
    assert gpu["bar1_mib"] == 131072
    assert gpu["mig_current"] is True and gpu["mig_pending"] is True
    assert gpu["power_limit_w"] == 500.0 and gpu["power_default_w"] == 500.0  # gpu_power_readings
    assert gpu["remap_failure"] is None  # <remapped_rows>N/A
    assert gpu["throttle"] is not None and not any(gpu["throttle"].values())  # clocks_event_reasons


def test_p100_oldest_schema_two_gpus_without_cuda_version():
    data = nvsmi.parse((REAL / "nvsmi-tesla-p100-pcie-12gb-x2-375.66.xml").read_text())
    assert data["driver_version"] == "375.66" and data["cuda_version"] is None
    assert [g["address"] for g in data["gpus"]] == ["0000:04:00.0", "0000:82:00.0"]
    first = data["gpus"][0]
    assert first["ecc_corrected"] == 0 and first["ecc_uncorrected"] == 0  # single_bit/double_bit totals
    assert first["retired_pending"] is False
    assert first["power_limit_w"] == 250.0  # <power_limit>, not current_power_limit
    assert first["utilization_pct"] == 33.4
    assert first["throttle"]["hw_slowdown"] is False


@pytest.mark.parametrize("fixture,kind", [
    ("nvidia-smi-err-no-driver.txt", "no-driver"),
    ("nvidia-smi-err-version-mismatch.txt", "version-mismatch"),
])
def test_nvidia_smi_failure_texts(fixture, kind):
    assert nvsmi.classify_failure((REAL / fixture).read_text()) == kind


def test_lspci_idle_downgrade_and_resizable_bar():
    devices = parse_lspci((REAL / "lspci-rtx-a6000.txt").read_text())
    dev = devices["0000:01:00.0"]
    assert (dev["link_cap_gt"], dev["link_cap_width"]) == (16.0, 16)
    assert (dev["link_sta_gt"], dev["link_sta_width"], dev["link_sta_downgraded"]) == (2.5, 16, True)
    assert dev["rebar"][1]["current"] == 256 << 20
    assert max(dev["rebar"][1]["supported"]) == 64 << 30


def test_topology_four_numa_nodes():
    rows = topo.parse((REAL / "topo-4gpu-nv12-pairs-4numa.txt").read_text())
    assert [r["numa_affinity"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["cpu_affinity"] for r in rows] == ["0-23", "24-47", "48-71", "72-95"]
    assert rows[0]["links"]["GPU1"] == "NV12" and rows[0]["links"]["GPU2"] == "SYS"


@pytest.mark.parametrize("text,expected", [
    ("00000000:01:00.0", "0000:01:00.0"), ("01:00.0", "0000:01:00.0"), ("0000:9A:00.1", "0000:9a:00.1")])
def test_pci_address_forms(text, expected):
    assert normalize_address(text) == expected


@pytest.mark.parametrize("text,gen", [("2.5 GT/s PCIe", 1), ("8.0 GT/s PCIe", 3), ("16.0 GT/s PCIe", 4),
                                      ("32.0 GT/s PCIe", 5), ("Unknown", None), (None, None)])
def test_link_speed_to_generation(text, gen):
    assert gen_from_speed(text) == gen


def test_small_parsers():
    assert system.cpulist("0-3,8-9") == [0, 1, 2, 3, 8, 9]
    assert system.selected("always [madvise] never") == "madvise"
    assert system.limit("Max locked memory         8388608  8388608  bytes", "Max locked memory") == (8388608, 8388608)
    assert system.secure_boot("SecureBoot enabled\n") is True
    assert system.secure_boot("SecureBoot disabled\nPlatform is in Setup Mode\n") is False
    assert system.dkms_status("nvidia/535.261.03, 6.1.0-26-amd64, x86_64: installed\n")[0]["kernel"] == "6.1.0-26-amd64"
    assert system.dkms_status("nvidia, 470.63.01, 5.4.0-80-generic, x86_64: installed")[0]["version"] == "470.63.01"
    events = system.xids("[ 12.3] NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.")
    assert events[0]["xid"] == 79 and events[0]["address"] == "0000:3b:00"
    with pytest.raises(ParseError):
        system.meminfo("garbage")
    with pytest.raises(ParseError):
        nvsmi.parse("<other/>")
