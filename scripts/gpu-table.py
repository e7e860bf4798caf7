#!/usr/bin/env python3
"""Every NVIDIA GPU by PCI id, generated from NVIDIA's and Debian's own lists.

  scripts/gpu-table.py sources [--open-modules PATH_OR_URL]   refresh tests/fixtures/gpu-sources/
  scripts/gpu-table.py generate                               write cli/llmhost/data/gpu_ids.json
  scripts/gpu-table.py check                                  exit 1 if gpu_ids.json is not what generate writes

`sources` needs Debian's archive (apt-get download, no install) and a clone of NVIDIA's
open-gpu-kernel-modules (git history: one README device table per release tag). It keeps only what
generate reads, small enough to commit, so `generate` and `check` run offline from the fixtures.
The sources, and what each one decides:
  - supported-gpus.json from Debian's nvidia-driver packages: names, legacy branch, open-module support;
  - the README of every open-gpu-kernel-modules tag: the first release of each branch that lists a device
    (the per-device driver floor; newer GPUs than a driver's list find no device);
  - Debian's pci.ids: the chip code of each device (GA102, GH100 ...), hence its architecture.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "gpu-sources"
OUTPUT = ROOT / "cli" / "llmhost" / "data" / "gpu_ids.json"
ARCHITECTURES = ROOT / "cli" / "llmhost" / "data" / "architectures.yml"

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DRIVER_PACKAGES = {"bookworm": "535.261.03-1", "trixie": "550.163.01-2"}
PCI_IDS = ("trixie", "0.0~2025.06.09-1")
OPEN_MODULES = "https://github.com/NVIDIA/open-gpu-kernel-modules.git"

_VERSION = re.compile(r"^\d{3}\.\d+(\.\d+)?$")
_README_ROW = re.compile(r"^\|\s*(?P<name>[^|]*?)\s*\|\s*(?P<id>[0-9A-F]{4}(?: [0-9A-F]{4} [0-9A-F]{4})?)\s*\|\s*$")
_PCI_DEVICE = re.compile(r"^\t(?P<id>[0-9a-f]{4})  (?P<name>.*)$")
_PCI_SUBSYSTEM = re.compile(r"^\t\t(?P<vendor>[0-9a-f]{4}) (?P<device>[0-9a-f]{4})  (?P<name>.*)$")
# A chip code: two letters and three digits (GA102, TU104, GB202) or two digits and a letter for the
# integrated Tegra parts (GA10B, GV11B), which are not discrete GPUs.
_CHIP = re.compile(r"^(?P<family>[A-Z]{2})(?P<digits>\d{2,3})(?P<suffix>[A-Z]{0,3})\b")


def version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- sources ---------------------------------------------------------------------------------------

def _apt_download(workdir: Path, wanted: list[tuple[str, str, str]]) -> list[Path]:
    """apt-get download with a throwaway configuration: the host's own sources are not touched."""
    lists = workdir / "lists"
    (lists / "partial").mkdir(parents=True)
    (workdir / "cache" / "archives" / "partial").mkdir(parents=True)
    suites = sorted({suite for suite, _, _ in wanted})
    (workdir / "sources.list").write_text(
        "".join(f"deb {DEBIAN_MIRROR} {suite} main non-free\n" for suite in suites))
    opts = ["-o", f"Dir::Etc::SourceList={workdir / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={workdir / 'cache'}"]
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True)
    subprocess.run(["apt-get", *opts, "download", *[f"{name}={version}" for _, name, version in wanted]],
                   check=True, cwd=workdir)
    return [next(workdir.glob(f"{name}_{version.split(':')[-1]}_*.deb")) for _, name, version in wanted]


def _open_modules_floors(repo: Path) -> tuple[list[str], dict[str, dict]]:
    """{pci id as listed: {name, floors: {branch: first version}}} over every release tag's README."""
    tags = [t for t in subprocess.run(["git", "-C", str(repo), "tag"], check=True, capture_output=True,
                                      text=True).stdout.split() if _VERSION.match(t)]
    tags.sort(key=version_key)
    devices: dict[str, dict] = {}
    for tag in tags:
        readme = subprocess.run(["git", "-C", str(repo), "show", f"{tag}:README.md"], capture_output=True,
                                text=True).stdout
        branch = tag.split(".")[0]
        for line in readme.splitlines():
            row = _README_ROW.match(line)
            if not row:
                continue
            entry = devices.setdefault(row["id"], {"name": row["name"], "floors": {}})
            entry["name"] = row["name"]  # the newest release's spelling
            entry["floors"].setdefault(branch, tag)
    return tags, devices


def cmd_sources(args: argparse.Namespace) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    provenance = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wanted = [(suite, "nvidia-driver", v) for suite, v in DRIVER_PACKAGES.items()] + [(PCI_IDS[0], "pci.ids", PCI_IDS[1])]
        debs = _apt_download(work, wanted)
        for deb, (suite, name, version) in zip(debs, wanted):
            unpacked = work / f"x-{name}-{suite}"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            provenance.append(f"- `{deb.name}` (Debian {suite}), sha256 `{sha256(deb)}`")
            if name == "nvidia-driver":
                upstream = version.split("-")[0]
                shutil.copyfile(unpacked / "usr/share/doc/nvidia-driver/supported-gpus.json.gz",
                                FIXTURES / f"supported-gpus-{upstream}.json.gz")
            else:
                pci_ids = (unpacked / "usr/share/misc/pci.ids").read_text(encoding="utf-8")
                (FIXTURES / "pci.ids-nvidia.txt").write_text(_nvidia_section(pci_ids), encoding="utf-8")
        repo = Path(args.open_modules)
        if not repo.is_dir():
            subprocess.run(["git", "clone", "--quiet", "--bare", args.open_modules, str(work / "ogkm")], check=True)
            repo = work / "ogkm"
        tags, devices = _open_modules_floors(repo)
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", f"{tags[-1]}^{{commit}}"], check=True,
                              capture_output=True, text=True).stdout.strip()
    lines = [f"# open-gpu-kernel-modules README device tables, {len(tags)} tags {tags[0]}..{tags[-1]} "
             f"(newest tag commit {head}); columns: PCI id as listed, product name, first release per branch"]
    for pci_id in sorted(devices):
        floors = ",".join(f"{b}={v}" for b, v in sorted(devices[pci_id]["floors"].items()))
        lines.append(f"{pci_id}\t{devices[pci_id]['name']}\t{floors}")
    (FIXTURES / "open-gpu-kernel-modules.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (FIXTURES / "SOURCES.md").write_text(
        "# Where these files come from\n\nWritten by `scripts/gpu-table.py sources`; read by "
        "`scripts/gpu-table.py generate`, which writes `cli/llmhost/data/gpu_ids.json`.\n\n"
        + "\n".join(provenance)
        + f"\n- open-gpu-kernel-modules ({OPEN_MODULES}): README.md of {len(tags)} release tags "
          f"{tags[0]}..{tags[-1]}, newest tag commit `{head}`\n"
        "\n`pci.ids-nvidia.txt` is the NVIDIA (10de) block of that pci.ids with its version header; the "
        "supported-gpus files are copied unchanged.\n", encoding="utf-8")
    print(f"wrote {FIXTURES.relative_to(ROOT)}: {len(devices)} open-module ids over {len(tags)} tags")


def _nvidia_section(pci_ids: str) -> str:
    keep, inside = [], False
    for line in pci_ids.splitlines():
        if line.startswith("#\tVersion:") or line.startswith("#\tDate:"):
            keep.append(line)
        elif re.match(r"^[0-9a-f]{4}  ", line):
            inside = line.startswith("10de  ")
            if inside:
                keep.append(line)
        elif inside and line.startswith("\t"):
            keep.append(line)
        elif line and not line.startswith("#"):
            inside = False
    return "\n".join(keep) + "\n"


# --- generate ----------------------------------------------------------------------------------------

def _chip_families() -> dict[str, str]:
    import yaml  # the project's own dependency; only generate needs it

    rows = yaml.safe_load(ARCHITECTURES.read_text())["architectures"]
    return {chip: row["name"] for row in rows for chip in row.get("chips", [])}


def _pci_ids(path: Path) -> tuple[str, dict[str, dict]]:
    version, devices, current = "", {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#\tVersion:"):
            version = line.split(":", 1)[1].strip()
        elif (dev := _PCI_DEVICE.match(line)):
            current = devices.setdefault(dev["id"], {"name": dev["name"], "subsystems": {}})
        elif current is not None and (sub := _PCI_SUBSYSTEM.match(line)):
            current["subsystems"][f"{sub['vendor']}:{sub['device']}"] = sub["name"]
    return version, devices


def _supported(path: Path) -> dict[str, list[dict]]:
    chips = json.loads(gzip.decompress(path.read_bytes()))["chips"]
    by_id: dict[str, list[dict]] = {}
    for chip in chips:
        by_id.setdefault(chip["devid"].lower().removeprefix("0x"), []).append(chip)
    return by_id


def _open_modules(path: Path) -> tuple[str, dict[str, dict]]:
    header, by_id = "", {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            header = line.lstrip("# ")
            continue
        pci_id, name, floors = line.split("\t")
        parts = pci_id.lower().split()
        entry = by_id.setdefault(parts[0], {"names": {}, "floors": {}})
        if len(parts) == 3:
            entry["names"][f"{parts[1]}:{parts[2]}"] = name
        else:
            entry["names"][""] = name
        for item in floors.split(","):
            branch, version = item.split("=")
            known = entry["floors"].get(branch)
            if not known or version_key(version) < version_key(known):
                entry["floors"][branch] = version
    return header, by_id


def _chip(pci_name: str) -> tuple[str | None, bool]:
    """'GA102GL [RTX A6000]' -> ('GA102GL', False); 'GA10B' -> ('GA10B', True): integrated Tegra."""
    match = _CHIP.match(pci_name)
    if not match:
        return None, False
    return match.group(0), len(match["digits"]) == 2 and bool(match["suffix"])


def generate() -> dict:
    families = _chip_families()
    pci_version, pci = _pci_ids(FIXTURES / "pci.ids-nvidia.txt")
    lists = {p.name.removeprefix("supported-gpus-").removesuffix(".json.gz"): _supported(p)
             for p in sorted(FIXTURES.glob("supported-gpus-*.json.gz"), key=lambda p: version_key(
                 p.name.removeprefix("supported-gpus-").removesuffix(".json.gz")))}
    om_header, open_modules = _open_modules(FIXTURES / "open-gpu-kernel-modules.tsv")
    ids = sorted(set().union(*lists.values()) | set(open_modules))
    gpus = {}
    for pci_id in ids:
        entries = next((lists[v][pci_id] for v in reversed(lists) if pci_id in lists[v]), [])
        plain = next((e for e in entries if "subdevid" not in e), entries[0] if entries else None)
        om = open_modules.get(pci_id, {"names": {}, "floors": {}})
        chip, integrated = _chip(pci.get(pci_id, {}).get("name", ""))
        record: dict = {"name": plain["name"] if plain else om["names"].get("") or next(iter(om["names"].values()))}
        if chip:
            record["chip"] = chip
        arch = families.get(chip[:2]) if chip else None
        if arch and not integrated:
            record["arch"] = arch
        if integrated:
            record["integrated"] = True
        legacy = plain.get("legacybranch") if plain else None
        if legacy:
            record["legacy_branch"] = int(legacy.split(".")[0])
        if any("kernelopen" in e.get("features", []) for e in entries) or om["floors"]:
            record["open_modules"] = True
        if om["floors"]:
            record["first_driver"] = dict(sorted(om["floors"].items()))
        record["listed_in"] = [v for v in lists if pci_id in lists[v]]
        variants = {f"{e['subvendorid'].lower().removeprefix('0x')}:{e['subdevid'].lower().removeprefix('0x')}": e["name"]
                    for e in entries if "subdevid" in e and e["name"] != record["name"]}
        variants.update({k: v for k, v in om["names"].items() if k and v != record["name"]})
        if variants:
            record["subsystems"] = dict(sorted(variants.items()))
        gpus[pci_id] = record
    return {
        "generated_by": "scripts/gpu-table.py generate (do not edit: regenerate)",
        "sources": {
            "supported_gpus": [f"supported-gpus.json from Debian's nvidia-driver {v}" for v in lists],
            "open_modules": om_header,
            "pci_ids": f"Debian pci.ids {pci_version} (chip codes)",
        },
        "supported_lists": list(lists),
        "coverage": f"supported-gpus.json {', '.join(lists)}; open-gpu-kernel-modules "
                    + re.search(r"\d+\.\d+(?:\.\d+)?\.\.\d+\.\d+(?:\.\d+)?", om_header).group(0),
        # The branches whose open-module device tables were read (their first and last releases bound
        # what the tables can say).
        "open_module_branches": sorted({b for e in open_modules.values() for b in e["floors"]}, key=int),
        "gpus": gpus,
    }


def render(table: dict) -> str:
    """JSON with one GPU per line, so a regeneration's diff shows which devices changed."""
    head = {k: v for k, v in table.items() if k != "gpus"}
    lines = [json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "gpus": {']
    rows = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table["gpus"].items()]
    return "\n".join(lines) + "\n" + ",\n".join(rows) + "\n }\n}\n"


def cmd_generate(_: argparse.Namespace) -> None:
    table = generate()
    OUTPUT.write_text(render(table), encoding="utf-8")
    archs: dict[str, int] = {}
    for row in table["gpus"].values():
        archs[row.get("arch", "unknown")] = archs.get(row.get("arch", "unknown"), 0) + 1
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(table['gpus'])} ids; " + ", ".join(f"{k} {v}" for k, v in sorted(archs.items())))


def cmd_check(_: argparse.Namespace) -> None:
    if OUTPUT.read_text(encoding="utf-8") != render(generate()):
        sys.exit(f"{OUTPUT.relative_to(ROOT)} differs from what the sources generate: run scripts/gpu-table.py generate")
    print(f"{OUTPUT.relative_to(ROOT)} matches its sources")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sources = sub.add_parser("sources", help="download the sources into tests/fixtures/gpu-sources")
    sources.add_argument("--open-modules", default=OPEN_MODULES,
                         help="a clone of open-gpu-kernel-modules (path) or its git URL")
    sources.set_defaults(func=cmd_sources)
    sub.add_parser("generate", help="write cli/llmhost/data/gpu_ids.json").set_defaults(func=cmd_generate)
    sub.add_parser("check", help="fail when gpu_ids.json is stale").set_defaults(func=cmd_check)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
