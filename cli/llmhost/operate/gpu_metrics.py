"""GPU metrics in the Prometheus format, from the same readings preflight uses (NVML, else
`nvidia-smi -q -x`), live or from a snapshot; Xid events from the kernel log.

Units follow Prometheus' conventions (bytes, hertz, watts, ratios 0-1); a value a GPU does not report
is absent rather than zero.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmhost.host.facts import PCI_DEVICES, Facts, Unavailable
from llmhost.host.parsers import system
from llmhost.promtext import family
from llmhost.units import finite

MIB = 1 << 20


def gpu_records(facts: Facts) -> tuple[list[dict[str, Any]], str | None]:
    """-> (records, source): NVML when it answers, else nvidia-smi, else none."""
    for source, data in (("nvml", facts.nvml), ("nvidia-smi", facts.smi)):
        if data and data.get("gpus"):
            return data["gpus"], source
    return [], None


def _scaled(value: Any, factor: float) -> float | None:
    """A reading in base units; a flag as 0/1; None for what is not a finite number (absent, not 0)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    number = finite(value)
    return number * factor if number is not None else None


def exposition(facts: Facts) -> str:
    gpus, source = gpu_records(facts)
    ids = [{"gpu": str(i), "address": g.get("address") or ""} for i, g in enumerate(gpus)]

    def per_gpu(field: str, factor: float = 1.0):
        return [(ids[i], _scaled(g.get(field), factor)) for i, g in enumerate(gpus)]

    lines = family("llmhost_gpu_reader_up", "1 when NVML or nvidia-smi answered with GPU readings.", "gauge",
                   [({"source": source or "none"}, 1 if source else 0)])
    try:
        on_bus = len(facts.pci_gpus) if facts.host.knows(PCI_DEVICES) else None
    except Unavailable:
        on_bus = None
    lines += family("llmhost_gpu_pci_devices", "NVIDIA GPUs on the PCI bus (sysfs), whether or not a driver answers.",
                    "gauge", [({}, on_bus)])
    lines += family("llmhost_gpu_info", "One series per GPU with its name, UUID and driver.", "gauge",
                    [({**ids[i], "name": g.get("name") or "", "uuid": g.get("uuid") or "",
                       "driver": g.get("driver_version") or ""}, 1) for i, g in enumerate(gpus)])
    gauges = [
        ("llmhost_gpu_temperature_celsius", "GPU core temperature.", "temperature_c", 1.0),
        ("llmhost_gpu_slowdown_temperature_celsius", "Temperature at which the GPU slows itself down.",
         "slowdown_c", 1.0),
        ("llmhost_gpu_shutdown_temperature_celsius", "Temperature at which the GPU shuts down.", "shutdown_c", 1.0),
        ("llmhost_gpu_power_draw_watts", "Power drawn by the GPU.", "power_draw_w", 1.0),
        ("llmhost_gpu_power_limit_watts", "Power limit in force.", "power_limit_w", 1.0),
        ("llmhost_gpu_power_default_limit_watts", "The card's default power limit.", "power_default_w", 1.0),
        ("llmhost_gpu_power_min_limit_watts", "Lowest power limit the card accepts.", "power_min_w", 1.0),
        ("llmhost_gpu_power_max_limit_watts", "Highest power limit the card accepts.", "power_max_w", 1.0),
        ("llmhost_gpu_sm_clock_hertz", "SM clock.", "clock_sm_mhz", 1e6),
        ("llmhost_gpu_memory_clock_hertz", "Memory clock.", "clock_memory_mhz", 1e6),
        ("llmhost_gpu_utilization_ratio", "Fraction of time a kernel ran on the GPU.", "utilization_pct", 0.01),
        ("llmhost_gpu_memory_utilization_ratio", "Fraction of time device memory was read or written.",
         "memory_utilization_pct", 0.01),
        ("llmhost_gpu_memory_used_bytes", "Device memory in use.", "memory_used_mib", MIB),
        ("llmhost_gpu_memory_total_bytes", "Device memory.", "vram_mib", MIB),
        ("llmhost_gpu_pcie_link_generation", "PCIe generation the link runs at now.", "link_gen_current", 1.0),
        ("llmhost_gpu_pcie_link_generation_max", "Highest PCIe generation of the GPU and its slot.",
         "link_gen_max", 1.0),
        ("llmhost_gpu_pcie_link_width", "PCIe lanes the link runs at now.", "link_width_current", 1.0),
        ("llmhost_gpu_pcie_link_width_max", "Lanes of the GPU and its slot.", "link_width_max", 1.0),
    ]
    for name, help_text, field, factor in gauges:
        lines += family(name, help_text, "gauge", per_gpu(field, factor))
    lines += family("llmhost_gpu_pcie_replay_errors_total", "PCIe replays (link-level retransmissions).",
                    "counter", per_gpu("pcie_replays"))
    lines += family("llmhost_gpu_ecc_errors_total", "ECC errors over the GPU's life (aggregate counters).", "counter",
                    [({**ids[i], "type": kind}, _scaled(g.get(field), 1.0)) for i, g in enumerate(gpus)
                     for kind, field in (("corrected", "ecc_corrected"), ("uncorrected", "ecc_uncorrected"))])
    lines += family("llmhost_gpu_remapped_rows_failure", "1 when a row remap failed: the GPU needs service.",
                    "gauge", per_gpu("remap_failure"))
    lines += family("llmhost_gpu_remapped_rows_pending", "1 when a row remap waits for a GPU reset.", "gauge",
                    per_gpu("remap_pending"))
    lines += family("llmhost_gpu_retired_pages_pending", "1 when a page retirement waits for a reset.", "gauge",
                    per_gpu("retired_pending"))
    lines += family("llmhost_gpu_clocks_event_active", "1 while a clocks-event (throttle) reason is active.",
                    "gauge", [({**ids[i], "reason": reason}, _scaled(active, 1.0)) for i, g in enumerate(gpus)
                              for reason, active in sorted((g.get("throttle") or {}).items())])
    lines += xid_lines(facts)
    return "\n".join(lines) + "\n"


def xid_lines(facts: Facts) -> list[str]:
    try:
        result = facts.command("kernel-log")
        readable = result.rc == 0 or bool(result.out)
    except Unavailable:
        result, readable = None, False
    counts = Counter((e["address"], e["xid"]) for e in system.xids(result.out)) if readable else Counter()
    lines = family("llmhost_gpu_kernel_log_readable", "1 when the kernel log could be read for Xid events.",
                   "gauge", [({}, 1 if readable else 0)])
    return lines + family("llmhost_gpu_xid_errors_total", "NVIDIA Xid events in the kernel log since boot.",
                          "counter", [({"address": f"{address}.0" if address.count(".") == 0 else address,
                                        "xid": str(xid)}, n)
                                      for (address, xid), n in sorted(counts.items())])
