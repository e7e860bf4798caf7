"""Every NVIDIA GPU by PCI id: the generated table against its sources, the CLI on every listed id,
and the verdicts at the edges NVIDIA's device lists draw."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REAL, replay, results, write_snapshot
from llmhost import knowledge
from llmhost.knowledge import compat
from llmhost.errors import LlmhostError
from llmhost.main import cli
from llmhost.knowledge.versions import parse_driver

ROOT = Path(__file__).resolve().parent.parent
SOURCES = Path(__file__).parent / "fixtures" / "gpu-sources"
# The chip code's first letters, as NVIDIA names its dies (GK104, GP102, TU104, GA100, AD102, GH100, GB202).
FAMILY = {"GF": "fermi", "GK": "kepler", "GM": "maxwell", "GP": "pascal", "GV": "volta", "TU": "turing",
          "GA": "ampere", "AD": "ada", "GH": "hopper", "GB": "blackwell"}


def _generator():
    spec = importlib.util.spec_from_file_location("gpu_table", ROOT / "scripts" / "gpu-table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listed_ids() -> dict[str, dict]:
    """Every device id NVIDIA's supported-gpus.json files list, with the newest entry's fields."""
    ids: dict[str, dict] = {}
    for path in sorted(SOURCES.glob("supported-gpus-*.json.gz")):
        for chip in json.loads(gzip.decompress(path.read_bytes()))["chips"]:
            ids.setdefault(chip["devid"].lower().removeprefix("0x"), chip)
    return ids


def _pci_chips() -> dict[str, str]:
    chips = {}
    for line in (SOURCES / "pci.ids-nvidia.txt").read_text().splitlines():
        match = re.match(r"^\t([0-9a-f]{4})  ([A-Z]{2})\d{3}", line)
        if match:
            chips[match.group(1)] = match.group(2)
    return chips


def _compat(*args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(cli, ["compat", "--no-host", *args, "--json"])
    try:
        return result.exit_code, json.loads(result.output)
    except ValueError:
        return result.exit_code, result.output


def test_the_committed_table_is_what_its_sources_generate():
    gen = _generator()
    assert (ROOT / "cli" / "llmhost" / "data" / "gpu_ids.json").read_text() == gen.render(gen.generate())


def test_the_table_covers_every_id_nvidia_lists():
    listed = _listed_ids()
    table = knowledge.gpu_table()["gpus"]
    assert len(listed) > 1100 and set(listed) <= set(table)
    assert sum(1 for c in listed.values() if not c.get("legacybranch")) >= 397


def test_every_listed_non_legacy_id_names_the_architecture_its_chip_code_gives():
    chips = _pci_chips()
    checked = 0
    for pci_id, chip in _listed_ids().items():
        if chip.get("legacybranch") or pci_id not in chips:
            continue
        code, answer = _compat("--gpu", f"10de:{pci_id}")
        assert isinstance(answer, dict), f"10de:{pci_id}: {answer}"
        assert answer["inputs"]["gpu_arch"] == FAMILY[chips[pci_id]], pci_id
        assert answer["inputs"]["gpu"]["pci_id"] == pci_id
        checked += 1
    assert checked > 380


@pytest.mark.parametrize("arch", ["blackwell", "hopper", "ada", "ampere", "turing", "volta", "pascal", "maxwell",
                                  "kepler"])
def test_each_family_keeps_its_rules_for_every_id(arch):
    ids = [k for k, v in knowledge.gpu_table()["gpus"].items() if v.get("arch") == arch]
    assert ids
    for pci_id in ids:
        device = knowledge.gpu_by_pci_id(pci_id)
        if device["first_driver"] and max(device["first_driver"]) < 580:
            continue  # a pre-production id that NVIDIA's tables listed once and dropped
        rec = compat.recommend(device["arch"], "debian-12", devices=[device])
        if arch == "blackwell":
            assert device["modules"] == ["open"] and rec["modules"] == "open", pci_id
            bad = compat.evaluate(device["arch"], parse_driver("580.65.06"), modules="proprietary", device=device)
            assert bad.verdict == "incompatible", pci_id
        elif arch in ("volta", "pascal", "maxwell"):
            assert device["modules"] == ["proprietary"] and rec["branch"] == 580, pci_id
            newer = compat.gpu_driver(device["arch"], parse_driver("590.44.01"), None, device)
            assert compat.verdict_of(newer) == "incompatible", pci_id
        elif arch == "kepler":
            assert device["legacy_branch"] <= 470 and rec["branch"] is None, pci_id
            if device["legacy_branch"] == 470:
                assert compat.verdict_of(compat.gpu_driver("kepler", parse_driver("470.256.02"), None, device)) \
                    == "compatible"
            assert compat.verdict_of(compat.gpu_driver("kepler", parse_driver("535.261.03"), None, device)) \
                == "incompatible"
        else:
            assert "open" in device["modules"] and rec["branch"] == 580, pci_id


@pytest.mark.parametrize("gpu,driver,modules,verdict,words", [
    ("10de:2335", "535.261.03", None, "incompatible", "not in R535's device list"),    # H200: R550 and later
    ("10de:2335", "545.29.06", None, "incompatible", "from R550 550.40.65"),
    ("10de:2335", "550.40.63", None, "incompatible", "at 550.40.65"),
    ("10de:2335", "550.163.01", None, "compatible", "R550's device list"),
    ("10de:233b", "550.163.01", None, "incompatible", "not in R550's device list"),    # H200 NVL: R565
    ("10de:233b", "565.57.01", None, "compatible", "565.57.01"),
    ("10de:2342", "580.65.06", "proprietary", "incompatible", "needs open kernel modules"),  # GH200
    ("10de:2342", "580.65.06", "open", "compatible", "open modules"),
    ("10de:2b85", "565.77", None, "incompatible", "from R570"),                          # RTX 5090
    ("10de:1eb8", "515.105.01", None, "compatible", "supports"),  # T4: lists that lag say nothing
    ("10de:1024", "535.261.03", None, "incompatible", "legacy GPU"),                     # Tesla K40c
])
def test_driver_verdicts_at_the_device_list_edges(gpu, driver, modules, verdict, words):
    args = ["--gpu", gpu, "--driver", driver] + (["--modules", modules] if modules else [])
    code, answer = _compat(*args)
    assert answer["verdict"] == verdict and code == (1 if verdict == "incompatible" else 0)
    driver_reasons = [r["message"] for r in answer["reasons"] if r["rule"] == "compat.gpu_driver"]
    assert any(words in m for m in driver_reasons), driver_reasons


def test_a_board_is_told_apart_by_its_subsystem_id():
    rtx6000 = knowledge.resolve_gpu("10de:1e30")
    rtx8000 = knowledge.resolve_gpu("10de:1e30/10de:129e")
    assert (rtx6000["name"], rtx6000["vram_gib"]) == ("Quadro RTX 6000", 24)
    assert (rtx8000["name"], rtx8000["vram_gib"]) == ("Quadro RTX 8000", 48)
    assert knowledge.gpu_by_pci_id("1E3010DE", "0x129E10DE")["name"] == "Quadro RTX 8000"  # nvidia-smi's spelling


def test_names_that_look_like_hex_ids_are_names():
    assert knowledge.resolve_gpu("B200")["arch"] == "blackwell"
    assert knowledge.resolve_gpu("A100")["arch"] == "ampere"
    assert knowledge.resolve_gpu("2330")["arch"] == "hopper"


@pytest.mark.parametrize("gpu,words", [
    ("Jetson AGX Orin", "JetPack"),
    ("10de:ffff", "not in NVIDIA's device lists"),
    ("10de:1e30/zz", "subsystem id 'zz' is not valid"),
])
def test_gpus_llmhost_cannot_serve_are_one_clear_line(gpu, words):
    result = CliRunner().invoke(cli, ["compat", "--no-host", "--gpu", gpu])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1


def test_the_install_plan_refuses_a_branch_whose_list_lacks_the_gpu():
    h200 = knowledge.gpu_by_pci_id("2335")
    with pytest.raises(LlmhostError, match="cannot drive this host's GPU.*R535"):
        compat.install_plan("debian-12", "hopper", source="distribution", devices=[h200])
    assert compat.install_plan("debian-13", "hopper", source="distribution", devices=[h200])["branch"] == 550


LSPCI_NN = """\
0000:3b:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H200 SXM 141GB] [10de:2335] (rev a1)
\tSubsystem: NVIDIA Corporation Device [10de:18be]
\t\tLnkCap:\tPort #0, Speed 32GT/s, Width x16, ASPM not supported
\t\tLnkSta:\tSpeed 32GT/s, Width x16
"""


def test_lspci_alone_identifies_the_device_and_judges_the_driver_against_its_list(tmp_path):
    module = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Sat May 31 08:48:35 UTC 2025\n"
    snap = write_snapshot(tmp_path / "s", files={"/proc/driver/nvidia/version": module},
                          cmds={"lspci-vvv": (LSPCI_NN, "", 0)})
    report = replay(snap)
    gpu = results(report, "gpu.present")[0]
    assert gpu.status == "pass" and "H200" in gpu.message
    verdicts = results(report, "compat.gpu_driver")
    assert verdicts and verdicts[0].status == "fail" and "not in R535's device list" in verdicts[0].message


@pytest.mark.parametrize("out,version", [
    ("ii  535.261.03-1 nvidia-smi\nun  <none> nvidia-utils-*\n", "535.261.03"),     # dpkg, Debian's own
    ("rc  550.163.01-2 nvidia-smi\nhi  580.95.05-1 nvidia-driver\n", "580.95.05"),  # removed, then held
    ("580.82.07 nvidia-driver\n", "580.82.07"),                                       # rpm
    ("package nvidia-driver is not installed\n", None),
])
def test_facts_say_which_driver_the_packages_installed(tmp_path, out, version):
    from llmhost.commands.facts_cmd import collect
    from llmhost.host.facts import Facts
    from llmhost.host.hostio import SnapshotHost

    data = collect(Facts(SnapshotHost(write_snapshot(tmp_path / "s", cmds={"driver-packages": (out, "", 1)}))))
    assert (data["driver"]["installed"] or {}).get("version") == version


def test_facts_json_carries_each_fields_origin(tmp_path):
    from conftest import sysfs_gpu
    from llmhost.commands.facts_cmd import collect
    from llmhost.host.facts import Facts
    from llmhost.host.hostio import SnapshotHost

    snap = write_snapshot(tmp_path / "s", files={**sysfs_gpu("0000:01:00.0", "2330"),
                                                  "/sys/bus/pci/devices/0000:01:00.0/subsystem_vendor": "0x10de\n",
                                                  "/sys/bus/pci/devices/0000:01:00.0/subsystem_device": "0x16c1\n"},
                          cmds={"lspci-vvv": (LSPCI_NN, "", 0)})
    data = collect(Facts(SnapshotHost(snap)))
    h100, h200 = data["gpus"]
    assert (h100["pci_device_id"], h100["pci_subsystem_id"], h100["architecture"]) == ("2330", "10de:16c1", "hopper")
    assert h100["origin"]["link_width_current"] == "sysfs" and h200["origin"]["name"] == "lspci"
    assert h200["modules"] == ["open", "proprietary"] and h200["first_driver"]["550"] == "550.40.65"
    assert data["unknown"]["driver_installed"] == "the package database was not read"


def _statuses(report):
    found = {}
    for r in report.results:
        found.setdefault(r.id, set()).add(r.status)
    return found


def test_a_pasted_lspci_alone_gives_the_verdicts_lspci_supports(tmp_path):
    text = (REAL / "lspci-rtx-a6000.txt").read_text()
    report = replay(write_snapshot(tmp_path / "s", base=False, cmds={"lspci-vvv": (text, "", 0)}))
    found = _statuses(report)
    assert found["gpu.present"] == {"pass"}
    assert found["pcie.link_width"] <= {"pass", "fail"} and found["pcie.resizable_bar"] <= {"pass", "warn"}
    # What lspci cannot show is unknown, not 'no': nothing else fails.
    failing = {k for k, v in found.items() if "fail" in v} - {"pcie.link_width", "pcie.link_speed"}
    assert not failing, failing
    assert found["memory.ram_vs_vram"] == {"skip"} and found["driver.loaded"] == {"skip"}


def test_nvidia_smi_alone_gives_the_verdicts_it_supports(tmp_path):
    xml = (REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text()
    report = replay(write_snapshot(tmp_path / "s", base=False, cmds={"nvidia-smi-q-x": (xml, "", 0)}))
    found = _statuses(report)
    assert found["gpu.present"] == {"pass"} and found["driver.loaded"] == {"pass"}
    assert found["compat.gpu_driver"] == {"pass"} and found["gpu.ecc"] == {"pass"}
    assert found["pcie.link_width"] == {"fail"}  # the T4 runs at x8 of x16: nvidia-smi shows it
    failing = {k for k, v in found.items() if "fail" in v} - {"pcie.link_width"}
    assert not failing, failing
