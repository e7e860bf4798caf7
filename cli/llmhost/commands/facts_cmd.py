"""`llmhost facts`: what this host (or a snapshot) is, as typed records the roles read.

Each GPU is one record merged from sysfs, lspci, nvidia-smi and NVML; every field is optional and
`origin` says which source gave it. What NVIDIA's device lists say of the GPU (architecture, module
flavours, legacy branch, first driver per branch) comes with it, so the roles decide from the same
knowledge as `llmhost compat`, without shell parsing of their own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from llmhost import knowledge
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.hostio import LiveHost, open_snapshot

SCHEMA = 1
GPU_FIELDS = ("address", "pci_device_id", "pci_subsystem_id", "name", "product", "architecture", "vram_mib",
              "bar1_mib", "link_gen_current", "link_gen_max", "link_width_current", "link_width_max",
              "numa_node", "local_cpulist", "driver_version", "uuid", "persistence_mode", "mig_current")


def _gpu(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record.get(k) for k in GPU_FIELDS}
    out["pci_device_id"] = knowledge.device_key(record["pci_device_id"]) if record.get("pci_device_id") else None
    out["pci_subsystem_id"] = knowledge.subsystem_key(record.get("pci_subsystem_id"))
    device = record.get("device") or {}
    out["known"] = bool(device)
    for key in ("chip", "modules", "legacy_branch", "vram_gib"):
        out[key] = device.get(key)
    out["first_driver"] = {str(b): v for b, v in (device.get("first_driver") or {}).items()}
    out["listed_in"] = device.get("listed_in", [])
    out["origin"] = dict(sorted(record.get("origin", {}).items()))
    return out


def collect(facts: Facts) -> dict[str, Any]:
    unknown: dict[str, str] = {}

    def attempt(key: str, getter):
        try:
            return getter()
        except Unavailable as exc:
            unknown[key] = str(exc)
            return None

    gpus = [_gpu(g) for g in facts.gpus]
    placements = attempt("placements", lambda: facts.gpu_placements) if gpus else []
    for gpu, place in zip(gpus, placements or []):
        gpu["numa_node"], gpu["cpus"], gpu["numa_origin"] = place["numa_node"], place["cpus"], place["origin"]
    state = facts.driver_state
    module = facts.kernel_module or {}

    def nvcc():
        match = re.search(r"V(\d+\.\d+\.\d+)", facts.command("nvcc-version").out)
        return match.group(1) if match else None

    return {
        "schema": SCHEMA,
        "gpus": gpus,
        "gpu_count": len(gpus),
        # True only when a source that would list a GPU was read and lists none.
        "gpus_absent": facts.gpus_absent,
        "nvswitch_count": attempt("nvswitch_count", lambda: facts.nvswitch_count),
        "driver": {"state": state["state"], "version": state.get("version") or module.get("version"),
                   "modules": module.get("flavour"), "detail": state["detail"],
                   # what the packages installed: after a pending reboot, the driver that will run
                   "installed": attempt("driver_installed", lambda: facts.driver_installed)},
        "os": attempt("os", facts.os_key),
        "kernel": attempt("kernel", lambda: facts.kernel_release),
        "cuda": attempt("cuda", nvcc),
        "unknown": unknown,
    }


def _text(data: dict[str, Any]) -> str:
    lines = [f"os {data['os'] or '?'}, kernel {data['kernel'] or '?'}, CUDA toolkit {data['cuda'] or 'none found'}",
             f"driver: {data['driver']['state']}" + (f" {data['driver']['version']}" if data["driver"]["version"] else "")
             + (f" ({data['driver']['modules']} modules)" if data["driver"]["modules"] else ""),
             f"NVSwitch chips: {'?' if data['nvswitch_count'] is None else data['nvswitch_count']}"]
    if not data["gpus"]:
        lines.append("GPUs: none" if data["gpus_absent"] else "GPUs: unknown (no source that lists GPUs was read)")
    for gpu in data["gpus"]:
        ident = f"10de:{gpu['pci_device_id']}" if gpu["pci_device_id"] else "id ?"
        lines.append(f"{gpu['address']}  {ident}  {gpu['product'] or gpu['name'] or '?'}  "
                     f"{gpu['architecture'] or 'architecture ?'}  NUMA {gpu['numa_node'] if gpu['numa_node'] is not None else '?'}"
                     f"  from {', '.join(sorted(set(gpu['origin'].values()))) or '?'}")
    for key, why in data["unknown"].items():
        lines.append(f"unknown {key}: {why}")
    return "\n".join(lines)


@click.command()
@click.option("--snapshot", "snapshot_path", metavar="PATH", help="Read a snapshot instead of this host.")
@click.option("--json", "as_json", is_flag=True, help="Typed records (what the roles read).")
def facts(snapshot_path, as_json):
    """Say what this host is: GPUs (with where each fact came from), driver, OS, kernel, CUDA."""
    host, tmp = open_snapshot(snapshot_path) if snapshot_path else (LiveHost(), None)
    try:
        data = collect(Facts(host))
    finally:
        if tmp:
            tmp.cleanup()
    click.echo(json.dumps(data, indent=2, sort_keys=False) if as_json else _text(data))
