"""The knowledge base: compatibility tables, GPU ids, platforms, thresholds and tuning values.

These YAML files under data/ are the single source of truth. The CLI, the preflight checks and the
Ansible roles (through plugins/filter/llmhost_knowledge.py) all read them through this module.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from llmhost.errors import LlmhostError
from llmhost.versions import CudaVersion, DriverVersion, parse_cuda, parse_driver


@cache
def load(name: str) -> dict[str, Any]:
    """One data file, parsed once: cuda, architectures, gpus, branches, platforms, thresholds, tuning."""
    return yaml.safe_load(files("llmhost").joinpath("data", f"{name}.yml").read_text())


def thresholds() -> dict[str, Any]:
    return load("thresholds")


def tuning() -> dict[str, Any]:
    return load("tuning")


def tuned_sysctl(key: str) -> int:
    return int(tuning()["sysctl"][key]["value"])


# --- CUDA -------------------------------------------------------------------------------------

def cuda_rows() -> list[dict[str, Any]]:
    return load("cuda")["toolkits"]


def cuda_min_driver(cuda: CudaVersion) -> DriverVersion:
    """Minimum driver for a toolkit (Table 3). An unlisted later update uses the newest listed one."""
    rows = [r for r in cuda_rows() if r["cuda"] == cuda.short]
    if not rows:
        known = ", ".join(sorted({r["cuda"] for r in cuda_rows()}, key=lambda v: parse_cuda(v)))
        raise LlmhostError(f"CUDA {cuda.short} is not in the compatibility table: known versions are {known}")
    eligible = [r for r in rows if r["update"] <= cuda.update] or rows[:1]
    return parse_driver(max(eligible, key=lambda r: r["update"])["driver"])


def minor_version_floor(cuda_major: int) -> DriverVersion | None:
    for row in load("cuda")["minor_version_floors"]:
        if row["cuda_major"] == cuda_major:
            return parse_driver(row["driver"])
    return None


def newest_cuda_for_driver(driver: DriverVersion, max_major: int | None = None) -> CudaVersion | None:
    """The newest toolkit whose Table 3 floor this driver meets (full, not minor-version, compatibility)."""
    best: CudaVersion | None = None
    for row in cuda_rows():
        cuda = parse_cuda(f"{row['cuda']}.{row['update']}")
        if parse_driver(row["driver"]) <= driver and (max_major is None or cuda.major <= max_major):
            best = max(best, cuda) if best else cuda
    return best


# --- GPUs and architectures --------------------------------------------------------------------

def architecture(name: str) -> dict[str, Any]:
    for arch in load("architectures")["architectures"]:
        if arch["name"] == name:
            return arch
    known = ", ".join(a["name"] for a in load("architectures")["architectures"])
    raise LlmhostError(f"architecture {name!r} is unknown: expected one of {known}")


def gpu_by_pci_id(device_id: str) -> dict[str, Any] | None:
    """Look up '2330', '0x2330', '10de:2330' or NVML's '0x233010DE'."""
    text = device_id.strip().lower().removeprefix("0x")
    if ":" in text:
        text = text.split(":", 1)[1]
    elif len(text) == 8 and text.endswith("10de"):
        text = text[:4]
    entry = load("gpus")["gpus"].get(text)
    return {"pci_id": text, **entry} if entry else None


_CHIP = re.compile(r"\b([A-Z]{2})\d{3}[A-Z]{0,3}\b")


def arch_for_chip(text: str) -> str | None:
    """'NVIDIA Corporation GA102GL [RTX A6000]' (lspci, pci.ids) -> 'ampere', from the chip code."""
    codes = {m.group(1) for m in _CHIP.finditer(text or "")}
    for row in load("architectures")["architectures"]:
        if codes & set(row.get("chips", [])):
            return row["name"]
    return None


def arch_for_name(product: str) -> str | None:
    for row in load("gpus")["name_patterns"]:
        if re.search(row["pattern"], product, re.IGNORECASE):
            return row["arch"]
    return None


def resolve_gpu(text: str) -> dict[str, Any]:
    """A GPU given by the user as a PCI id or a product name -> {name, arch, vram_gib?}."""
    entry = gpu_by_pci_id(text) if re.fullmatch(r"(0x)?(10de:)?[0-9a-f]{4}(10de)?", text.strip(), re.IGNORECASE) else None
    if entry:
        return entry
    for pci_id, row in load("gpus")["gpus"].items():
        if row["name"].lower() == text.strip().lower():
            return {"pci_id": pci_id, **row}
    arch = arch_for_name(text)
    if arch:
        return {"name": text, "arch": arch}
    raise LlmhostError(
        f"GPU {text!r} is unknown: expected a PCI device id (e.g. 10de:2330) or a product name such as 'H100 PCIe'"
    )


# --- Driver branches and platforms ---------------------------------------------------------------

def branch_info(branch: int) -> dict[str, Any] | None:
    for row in load("branches")["branches"]:
        if row["branch"] == branch:
            return row
    return None


def platform(os_id: str) -> dict[str, Any]:
    data = load("platforms")
    key = data["aliases"].get(os_id, os_id)
    if key not in data["platforms"]:
        known = ", ".join(list(data["platforms"]) + list(data["aliases"]))
        raise LlmhostError(f"OS {os_id!r} is not supported: expected one of {known}")
    return {"id": key, **data["platforms"][key]}


def os_key(distro_id: str, version: str) -> str:
    """'debian', '12.7' -> 'debian-12'; 'ubuntu', '24.04' -> 'ubuntu-24.04'; 'rocky', '9.4' -> 'rocky-9'."""
    major = version.split(".")[0]
    return f"{distro_id}-{version if distro_id == 'ubuntu' else major}"


def packaged_branches(os_id: str) -> list[int]:
    plat = platform(os_id)
    return sorted({int(b) for b in plat.get("distro_branches", {})} | set(plat.get("nvidia_branches", [])))


def packages_for(os_id: str, flavour: str, branch: int, cuda: CudaVersion | None = None) -> list[str]:
    plat = platform(os_id)
    if flavour not in ("open", "proprietary"):
        raise LlmhostError(f"module flavour {flavour!r} is not valid: expected open or proprietary")
    cuda_dash = f"{cuda.major}-{cuda.minor}" if cuda else ""
    return [p.format(branch=branch, cuda_dash=cuda_dash) for p in plat["packages"][flavour]]
