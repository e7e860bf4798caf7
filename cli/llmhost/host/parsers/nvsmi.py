"""`nvidia-smi -q -x` XML, old (nvsmi_device_v8, clocks_throttle_reasons) and new (v12+,
clocks_event_reasons, gpu_power_readings) schemas alike."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from llmhost.host.parsers import ParseError
from llmhost.host.parsers.pci import normalize_address

_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def _text(node: ET.Element | None, path: str) -> str | None:
    found = node.find(path) if node is not None else None
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return None if value in ("", "N/A", "[N/A]", "Unknown Error", "[Unknown Error]", "Not Supported") else value


def _number(node: ET.Element | None, path: str) -> float | None:
    value = _text(node, path)
    match = _NUMBER.match(value) if value else None
    return float(match.group(1)) if match else None


def _int(node: ET.Element | None, path: str) -> int | None:
    value = _number(node, path)
    return int(value) if value is not None else None


def _flag(node: ET.Element | None, path: str, true: tuple[str, ...] = ("Enabled", "Yes", "Active")) -> bool | None:
    value = _text(node, path)
    return None if value is None else value in true


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ecc_counts(ecc: ET.Element | None, kind: str) -> dict[str, int | None]:
    """Correctable and uncorrectable counts of ecc_errors/<kind> in either schema."""
    block = ecc.find(kind) if ecc is not None else None
    if block is None:
        return {"correctable": None, "uncorrectable": None}
    if block.find("single_bit") is not None:  # old schema: single_bit/double_bit totals
        return {"correctable": _int(block, "single_bit/total"), "uncorrectable": _int(block, "double_bit/total")}
    corr = [_int(child, ".") for child in block if child.tag.endswith("_correctable")]
    unc = [_int(child, ".") for child in block if child.tag.endswith("_uncorrectable")]
    return {"correctable": _sum(corr), "uncorrectable": _sum(unc)}


def _throttle(gpu: ET.Element) -> tuple[dict[str, bool], bool]:
    """Active clocks-event reasons by short name, and whether the GPU reported any at all."""
    block = gpu.find("clocks_event_reasons")
    prefix = "clocks_event_reason_"
    if block is None:
        block, prefix = gpu.find("clocks_throttle_reasons"), "clocks_throttle_reason_"
    if block is None:
        return {}, False
    reasons = {}
    for child in block:
        if child.tag.startswith(prefix) and child.text and child.text.strip() in ("Active", "Not Active"):
            reasons[child.tag[len(prefix):]] = child.text.strip() == "Active"
    return reasons, bool(reasons)


def _gpu(gpu: ET.Element, driver: str | None, cuda: str | None) -> dict[str, Any]:
    power = gpu.find("gpu_power_readings")
    if power is None:
        power = gpu.find("power_readings")
    ecc = gpu.find("ecc_errors")
    aggregate, volatile = _ecc_counts(ecc, "aggregate"), _ecc_counts(ecc, "volatile")
    remap = gpu.find("remapped_rows")
    has_remap = remap is not None and len(remap) > 0
    throttle, has_throttle = _throttle(gpu)
    address = _first(_text(gpu, "pci/pci_bus_id"), gpu.get("id"))
    return {
        "address": normalize_address(address) if address else None,
        "name": _text(gpu, "product_name"),
        "architecture": (_text(gpu, "product_architecture") or "").lower() or None,
        "pci_device_id": _text(gpu, "pci/pci_device_id"),
        "pci_subsystem_id": _text(gpu, "pci/pci_sub_system_id"),
        "uuid": _text(gpu, "uuid"),
        "serial": _text(gpu, "serial"),
        "driver_version": driver,
        "cuda_version": cuda,
        "vram_mib": _int(gpu, "fb_memory_usage/total"),
        "memory_used_mib": _int(gpu, "fb_memory_usage/used"),
        "bar1_mib": _int(gpu, "bar1_memory_usage/total"),
        "persistence_mode": _flag(gpu, "persistence_mode"),
        # NVLink fabric registration (Hopper and later; 'N/A' before): Not Started, In Progress, Completed.
        "fabric_state": _text(gpu, "fabric/state"),
        "fabric_status": _text(gpu, "fabric/status"),
        "mig_current": _flag(gpu, "mig_mode/current_mig"),
        "mig_pending": _flag(gpu, "mig_mode/pending_mig"),
        "link_gen_current": _int(gpu, "pci/pci_gpu_link_info/pcie_gen/current_link_gen"),
        "link_gen_max": _int(gpu, "pci/pci_gpu_link_info/pcie_gen/max_link_gen"),
        "link_width_current": _int(gpu, "pci/pci_gpu_link_info/link_widths/current_link_width"),
        "link_width_max": _int(gpu, "pci/pci_gpu_link_info/link_widths/max_link_width"),
        "utilization_pct": _number(gpu, "utilization/gpu_util"),
        "memory_utilization_pct": _number(gpu, "utilization/memory_util"),
        "clock_sm_mhz": _number(gpu, "clocks/sm_clock"),
        "clock_memory_mhz": _number(gpu, "clocks/mem_clock"),
        "pcie_replays": _int(gpu, "pci/replay_counter"),
        "ecc_enabled": _flag(gpu, "ecc_mode/current_ecc"),
        "ecc_corrected": _first(aggregate["correctable"], volatile["correctable"]),
        "ecc_uncorrected": _first(aggregate["uncorrectable"], volatile["uncorrectable"]),
        "retired_pages": _sum([
            _int(gpu, "retired_pages/multiple_single_bit_retirement/retired_count"),
            _int(gpu, "retired_pages/double_bit_retirement/retired_count"),
        ]),
        "retired_pending": _first(_flag(gpu, "retired_pages/pending_retirement"),
                                  _flag(gpu, "retired_pages/pending_blacklist")),
        "remap_uncorrectable": _int(remap, "remapped_row_unc") if has_remap else None,
        "remap_pending": _flag(remap, "remapped_row_pending") if has_remap else None,
        "remap_failure": _flag(remap, "remapped_row_failure") if has_remap else None,
        "temperature_c": _number(gpu, "temperature/gpu_temp"),
        "slowdown_c": _number(gpu, "temperature/gpu_temp_slow_threshold"),
        "shutdown_c": _number(gpu, "temperature/gpu_temp_max_threshold"),
        "throttle": throttle if has_throttle else None,
        # R535+ reports the instantaneous and the 1 s average draw; older drivers one value.
        "power_draw_w": _first(_number(power, "power_draw"), _number(power, "instant_power_draw"),
                               _number(power, "average_power_draw")),
        "power_limit_w": _first(_number(power, "current_power_limit"), _number(power, "power_limit")),
        "power_default_w": _number(power, "default_power_limit"),
        "power_min_w": _number(power, "min_power_limit"),
        "power_max_w": _number(power, "max_power_limit"),
    }


def parse(text: str) -> dict[str, Any]:
    """-> {"driver_version", "cuda_version", "attached_gpus", "gpus": [...]}"""
    if not text or not text.strip():
        raise ParseError("nvidia-smi -q -x output is empty")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"nvidia-smi -q -x output is not well-formed XML: {exc}") from None
    if root.tag != "nvidia_smi_log":
        raise ParseError(f"nvidia-smi -q -x output has root <{root.tag}>, expected <nvidia_smi_log>")
    driver, cuda = _text(root, "driver_version"), _text(root, "cuda_version")
    return {
        "driver_version": driver,
        "cuda_version": cuda,
        "attached_gpus": _int(root, "attached_gpus"),
        "gpus": [_gpu(gpu, driver, cuda) for gpu in root.findall("gpu")],
    }


# nvidia-smi's own words when it cannot reach the driver (see shared fixtures nvidia-smi-err-*).
NO_DRIVER = "couldn't communicate with the NVIDIA driver"
VERSION_MISMATCH = "Driver/library version mismatch"


def classify_failure(text: str) -> str:
    """What a failed nvidia-smi said: 'version-mismatch', 'no-driver' or 'other'."""
    if VERSION_MISMATCH.lower() in text.lower():
        return "version-mismatch"
    if NO_DRIVER.lower() in text.lower() or "no devices were found" in text.lower():
        return "no-driver"
    return "other"
