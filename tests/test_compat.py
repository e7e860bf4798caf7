"""The compatibility tables, pinned row by row, and the verdicts at their edges."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from llmhost import knowledge
from llmhost.knowledge import compat
from llmhost.errors import LlmhostError
from llmhost.main import cli
from llmhost.knowledge.versions import parse_cuda, parse_driver

# NVIDIA CUDA release notes, Table 3 (x86_64 Linux minimum driver), as in field.md.
CUDA_TABLE = [
    ("11.0", 2, "450.51.05"), ("11.0", 3, "450.51.06"), ("11.1", 0, "455.23"), ("11.1", 1, "455.32"),
    ("11.2", 0, "460.27.03"), ("11.2", 1, "460.32.03"), ("11.3", 0, "465.19.01"), ("11.4", 0, "470.42.01"),
    ("11.4", 1, "470.57.02"), ("11.4", 3, "470.82.01"), ("11.5", 0, "495.29.05"), ("11.6", 0, "510.39.01"),
    ("11.6", 1, "510.47.03"), ("11.7", 0, "515.43.04"), ("11.7", 1, "515.48.07"),
    ("11.8", 0, "520.61.05"), ("12.0", 0, "525.60.13"), ("12.0", 1, "525.85.12"), ("12.1", 0, "530.30.02"),
    ("12.1", 1, "530.30.02"), ("12.2", 0, "535.54.03"), ("12.2", 1, "535.86.09"), ("12.2", 2, "535.104.05"),
    ("12.3", 0, "545.23.06"), ("12.3", 1, "545.23.08"), ("12.4", 0, "550.54.14"), ("12.4", 1, "550.54.15"),
    ("12.5", 0, "555.42.02"), ("12.5", 1, "555.42.06"), ("12.6", 0, "560.28.03"), ("12.6", 1, "560.35.03"),
    ("12.6", 3, "560.35.05"), ("12.8", 0, "570.26"), ("12.8", 1, "570.124.06"), ("12.9", 0, "575.51.03"),
    ("12.9", 1, "575.57.08"), ("13.0", 0, "580.65.06"), ("13.0", 1, "580.82.07"), ("13.0", 2, "580.95.05"),
    ("13.1", 0, "590.44.01"), ("13.2", 0, "595.45.04"), ("13.3", 0, "610.43.02"),
]
ARCH_TABLE = [  # name, compute capabilities, first CUDA, min driver, modules, last branch
    ("blackwell", ["10.0", "10.3", "12.0"], "12.8", "570.26", ["open"], None),
    ("hopper", ["9.0"], "11.8", "520.61.05", ["open", "proprietary"], None),
    ("ada", ["8.9"], "11.8", "520.61.05", ["open", "proprietary"], None),
    ("ampere", ["8.0", "8.6", "8.7"], "11.0", "450.36.06", ["open", "proprietary"], None),
    ("turing", ["7.5"], "10.0", "410.48", ["open", "proprietary"], None),
    ("volta", ["7.0", "7.2"], "9.0", "384.81", ["proprietary"], 580),
    ("pascal", ["6.0", "6.1", "6.2"], "8.0", "367.48", ["proprietary"], 580),
    ("maxwell", ["5.0", "5.2", "5.3"], "6.5", "340.29", ["proprietary"], 580),
    ("kepler", ["3.0", "3.5", "3.7"], "5.0", "304.43", ["proprietary"], 470),
    ("fermi", ["2.0", "2.1"], "3.0", "256.40", ["proprietary"], 390),
]


def test_cuda_table_is_pinned_row_by_row():
    rows = [(r["cuda"], r["update"], r["driver"]) for r in knowledge.cuda_rows()]
    assert rows == CUDA_TABLE
    assert all(r["source"] in knowledge.load("cuda")["sources"] for r in knowledge.cuda_rows())


def test_architecture_table_is_pinned_row_by_row():
    rows = [(a["name"], a["compute_capability"], a["first_cuda"], a["min_driver"], a["modules"], a.get("last_branch"))
            for a in knowledge.load("architectures")["architectures"]]
    assert rows == ARCH_TABLE


@pytest.mark.parametrize("cuda,update,driver", CUDA_TABLE)
def test_driver_cuda_verdict_at_and_below_each_floor(cuda, update, driver):
    version = parse_cuda(f"{cuda}.{update}")
    floor = parse_driver(driver)
    assert compat.verdict_of(compat.driver_cuda(floor, version)) == "compatible"
    one_below = parse_driver(f"{floor.branch}.{floor.minor}.{floor.patch - 1}") if floor.patch else \
        parse_driver(f"{floor.branch}.{floor.minor - 1}.99")
    below = compat.verdict_of(compat.driver_cuda(one_below, version))
    # Just below a floor is still above the major's minor-version floor, except at the floor itself.
    minor_floor = knowledge.minor_version_floor(version.major)
    assert below == ("minor-compatible" if one_below >= minor_floor else "incompatible")


def test_minor_version_compatibility_and_its_floor():
    assert compat.verdict_of(compat.driver_cuda(parse_driver("535.54.03"), parse_cuda("12.8"))) == "minor-compatible"
    assert compat.verdict_of(compat.driver_cuda(parse_driver("525.60.13"), parse_cuda("12.9"))) == "minor-compatible"
    assert compat.verdict_of(compat.driver_cuda(parse_driver("525.60.12"), parse_cuda("12.9"))) == "incompatible"
    assert compat.verdict_of(compat.driver_cuda(parse_driver("575.57.08"), parse_cuda("13.0"))) == "incompatible"


def test_nvcc_component_version_counts_as_ga():
    assert parse_cuda("12.4.131") == parse_cuda("12.4")
    assert str(knowledge.cuda_min_driver(parse_cuda("12.4.131"))) == "550.54.14"
    assert str(knowledge.cuda_min_driver(parse_cuda("12.6.2"))) == "560.35.03"  # no U2 row: Update 1's floor


@pytest.mark.parametrize("arch,driver,modules,verdict", [
    ("blackwell", "570.26", "open", "compatible"),
    ("blackwell", "570.25.99", "open", "incompatible"),
    ("blackwell", "580.65.06", "proprietary", "incompatible"),
    ("pascal", "580.95.05", "proprietary", "compatible"),
    ("pascal", "580.95.05", "open", "incompatible"),
    ("pascal", "590.44.01", "proprietary", "incompatible"),
    ("hopper", "520.61.05", None, "compatible"),
    ("hopper", "515.105.01", None, "incompatible"),
])
def test_gpu_driver_edges(arch, driver, modules, verdict):
    assert compat.verdict_of(compat.gpu_driver(arch, parse_driver(driver), modules)) == verdict


def test_cuda_13_dropped_volta_and_blackwell_needs_12_8():
    assert compat.verdict_of(compat.gpu_cuda("volta", parse_cuda("13.0"))) == "incompatible"
    assert compat.verdict_of(compat.gpu_cuda("volta", parse_cuda("12.9"))) == "compatible"
    assert compat.verdict_of(compat.gpu_cuda("blackwell", parse_cuda("12.6"))) == "incompatible"


def test_eol_dates():
    assert compat.driver_eol(parse_driver("535.261.03"), dt.date(2026, 7, 1))[0].level == "warn"
    assert compat.driver_eol(parse_driver("580.95.05"), dt.date(2026, 7, 1))[0].level == "pass"
    assert compat.driver_eol(parse_driver("580.95.05"), dt.date(2028, 5, 1))[0].level == "warn"  # < 90 days


def test_gpu_identification():
    assert knowledge.resolve_gpu("10de:2330")["arch"] == "hopper"
    assert knowledge.resolve_gpu("0x233010DE")["name"] == "NVIDIA H100 80GB HBM3"
    assert knowledge.resolve_gpu("NVIDIA A100-SXM4-80GB")["arch"] == "ampere"
    assert knowledge.resolve_gpu("Tesla T4")["arch"] == "turing"
    assert knowledge.resolve_gpu("GeForce RTX 4090")["vram_gib"] == 24
    with pytest.raises(LlmhostError, match="'Voodoo 5'"):
        knowledge.resolve_gpu("Voodoo 5")


def test_recommendation_per_platform():
    today = dt.date(2026, 11, 21)
    hopper_noble = compat.recommend("hopper", "ubuntu-24.04", today=today)
    assert hopper_noble["branch"] == 580 and hopper_noble["modules"] == "open"
    assert "nvidia-driver-580-server-open" in hopper_noble["packages"]
    pascal_rhel = compat.recommend("pascal", "rocky-9", today=today)
    assert pascal_rhel["branch"] == 580 and pascal_rhel["modules"] == "proprietary"
    assert pascal_rhel["packages"] == ["@nvidia-driver:580-dkms"]
    # Debian 12 ships R535, past its June 2026 end of life: NVIDIA's repository, with the distribution's as alternative.
    bookworm = compat.recommend("ampere", "debian-12", today=today)
    assert bookworm["source"] == "nvidia-repository" and bookworm["branch"] == 580
    assert compat.recommend("ampere", "debian-12", today=dt.date(2026, 1, 1))["branch"] == 580
    trixie_before_eol = compat.recommend("ampere", "debian-13", today=dt.date(2024, 6, 1))
    assert trixie_before_eol["branch"] in (580, 550)


@pytest.mark.parametrize("args,exit_code", [
    (["--gpu", "H100 PCIe", "--driver", "535.54.03", "--cuda", "12.2", "--no-host"], 0),
    (["--gpu", "H100 PCIe", "--driver", "535.54.03", "--cuda", "12.8", "--no-host"], 0),
    (["--gpu", "B200", "--driver", "560.35.05", "--no-host"], 1),
    (["--gpu", "Tesla P100-PCIE-12GB", "--modules", "open", "--no-host"], 1),
    (["--driver", "53x.1", "--no-host"], 2),
    (["--cuda", "twelve", "--no-host"], 2),
    (["--gpu", "Voodoo 5", "--no-host"], 2),
    (["--os", "windows-11", "--driver", "535.54.03", "--no-host"], 2),
    (["--no-host"], 2),
])
def test_compat_cli_exit_codes(args, exit_code):
    result = CliRunner().invoke(cli, ["compat", *args])
    assert result.exit_code == exit_code, result.output
    if exit_code == 2:
        assert result.output.startswith("llmhost: error:") and result.output.count("\n") == 1


def test_compat_cli_json_shape():
    result = CliRunner().invoke(cli, ["compat", "--gpu", "H100 PCIe", "--driver", "535.54.03", "--cuda", "12.8",
                                      "--os", "ubuntu-22.04", "--no-host", "--json"])
    data = json.loads(result.output)
    assert data["verdict"] == "minor-compatible"
    assert {"level", "rule", "message"} <= set(data["reasons"][0])
    assert data["recommended"]["modules"] == "open" and data["recommended"]["packages"]
