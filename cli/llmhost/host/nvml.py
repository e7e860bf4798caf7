"""Read GPU facts through NVML (nvidia-ml-py), in the same shape as parsers.nvsmi.parse().

Every NVML call may be unsupported on a given GPU or driver: each is asked alone and a failure
leaves that one field None.
"""

from __future__ import annotations

from typing import Any, Callable

from llmhost.host.parsers.pci import normalize_address

_THROTTLE_BITS = {  # nvmlClocksEventReason* bit -> the short names nvidia-smi uses
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clocks_setting",
}


def _ask(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: the field is unknown
        return None


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _gpu(pynvml, index: int, driver: str, cuda: str | None) -> dict[str, Any]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    pci = _ask(lambda: pynvml.nvmlDeviceGetPciInfo(handle))
    mem = _ask(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    bar1 = _ask(lambda: pynvml.nvmlDeviceGetBAR1MemoryInfo(handle))
    mig = _ask(lambda: pynvml.nvmlDeviceGetMigMode(handle))
    ecc = _ask(lambda: pynvml.nvmlDeviceGetEccMode(handle))
    remap = _ask(lambda: pynvml.nvmlDeviceGetRemappedRows(handle))
    reasons = _ask(lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
    util = _ask(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    limits = _ask(lambda: pynvml.nvmlDeviceGetPowerManagementLimitConstraints(handle))
    retired = [
        _ask(lambda cause=cause: len(pynvml.nvmlDeviceGetRetiredPages(handle, cause)))
        for cause in (pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                      pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    ]
    retired_known = [r for r in retired if r is not None]

    def ecc_count(kind):
        return _ask(lambda: pynvml.nvmlDeviceGetTotalEccErrors(handle, kind, pynvml.NVML_AGGREGATE_ECC))

    def mw_to_w(value):
        return value / 1000.0 if value is not None else None

    arch_code = _ask(lambda: pynvml.nvmlDeviceGetArchitecture(handle))
    arch_names = {2: "kepler", 3: "maxwell", 4: "pascal", 5: "volta", 6: "turing", 7: "ampere",
                  8: "ada", 9: "hopper", 10: "blackwell"}
    return {
        "address": normalize_address(_text(pci.busId)) if pci else None,
        "name": _text(_ask(lambda: pynvml.nvmlDeviceGetName(handle))),
        "architecture": arch_names.get(arch_code),
        "pci_device_id": f"{pci.pciDeviceId:08X}" if pci else None,
        "pci_subsystem_id": f"{pci.pciSubSystemId:08X}" if pci else None,
        "uuid": _text(_ask(lambda: pynvml.nvmlDeviceGetUUID(handle))),
        "serial": _text(_ask(lambda: pynvml.nvmlDeviceGetSerial(handle))),
        "driver_version": driver,
        "cuda_version": cuda,
        "vram_mib": mem.total // (1 << 20) if mem else None,
        "memory_used_mib": mem.used // (1 << 20) if mem else None,
        "bar1_mib": bar1.bar1Total // (1 << 20) if bar1 else None,
        "persistence_mode": _ask(lambda: pynvml.nvmlDeviceGetPersistenceMode(handle) == 1),
        "mig_current": bool(mig[0]) if mig else None,
        "mig_pending": bool(mig[1]) if mig else None,
        "link_gen_current": _ask(lambda: pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)),
        "link_gen_max": _ask(lambda: pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)),
        "link_width_current": _ask(lambda: pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle)),
        "link_width_max": _ask(lambda: pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle)),
        "utilization_pct": float(util.gpu) if util else None,
        "memory_utilization_pct": float(util.memory) if util else None,
        "clock_sm_mhz": _ask(lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))),
        "clock_memory_mhz": _ask(lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM))),
        "pcie_replays": _ask(lambda: pynvml.nvmlDeviceGetPcieReplayCounter(handle)),
        "ecc_enabled": bool(ecc[0]) if ecc else None,
        "ecc_corrected": ecc_count(pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        "ecc_uncorrected": ecc_count(pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        "retired_pages": sum(retired_known) if retired_known else None,
        "retired_pending": _ask(lambda: pynvml.nvmlDeviceGetRetiredPagesPendingStatus(handle) == 1),
        "remap_uncorrectable": remap[1] if remap else None,
        "remap_pending": bool(remap[2]) if remap else None,
        "remap_failure": bool(remap[3]) if remap else None,
        "temperature_c": _ask(lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))),
        "slowdown_c": _ask(lambda: float(pynvml.nvmlDeviceGetTemperatureThreshold(
            handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN))),
        "shutdown_c": _ask(lambda: float(pynvml.nvmlDeviceGetTemperatureThreshold(
            handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN))),
        "throttle": {name: bool(reasons & bit) for bit, name in _THROTTLE_BITS.items()} if reasons is not None else None,
        "power_draw_w": mw_to_w(_ask(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))),
        "power_limit_w": mw_to_w(_ask(lambda: pynvml.nvmlDeviceGetPowerManagementLimit(handle))),
        "power_default_w": mw_to_w(_ask(lambda: pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle))),
        "power_min_w": mw_to_w(limits[0]) if limits else None,
        "power_max_w": mw_to_w(limits[1]) if limits else None,
    }


# What each field of a GPU record holds: a replayed record (a snapshot's cmd/nvml.out, which anyone
# can write) keeps only values of these types; anything else reads as unknown.
_NUMBER = (int, float)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "address": (str,), "name": (str,), "architecture": (str,), "pci_device_id": (str,), "pci_subsystem_id": (str,),
    "uuid": (str,),
    "serial": (str,), "driver_version": (str,), "cuda_version": (str,), "vram_mib": (int,),
    "memory_used_mib": (int,), "bar1_mib": (int,),
    "persistence_mode": (bool,), "mig_current": (bool,), "mig_pending": (bool,), "link_gen_current": (int,),
    "link_gen_max": (int,), "link_width_current": (int,), "link_width_max": (int,), "utilization_pct": _NUMBER,
    "memory_utilization_pct": _NUMBER, "clock_sm_mhz": _NUMBER, "clock_memory_mhz": _NUMBER, "pcie_replays": (int,),
    "ecc_enabled": (bool,), "ecc_corrected": (int,), "ecc_uncorrected": (int,), "retired_pages": (int,),
    "retired_pending": (bool,), "remap_uncorrectable": (int,), "remap_pending": (bool,), "remap_failure": (bool,),
    "temperature_c": _NUMBER, "slowdown_c": _NUMBER, "shutdown_c": _NUMBER, "throttle": (dict,),
    "power_draw_w": _NUMBER, "power_limit_w": _NUMBER, "power_default_w": _NUMBER, "power_min_w": _NUMBER,
    "power_max_w": _NUMBER,
}
TOP_TYPES: dict[str, tuple[type, ...]] = {"driver_version": (str,), "cuda_version": (str,), "attached_gpus": (int,)}


def _of_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int in Python; a count or a size that is True is not a number.
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def typed(data: Any) -> dict[str, Any] | None:
    """A replayed NVML record -> the same with every value of the wrong type dropped (None when it is
    not a record at all)."""
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        return None
    out = {k: v for k, v in data.items() if k in TOP_TYPES and _of_type(v, TOP_TYPES[k])}
    gpus = []
    for gpu in data["gpus"]:
        if isinstance(gpu, dict):
            record = {k: v for k, v in gpu.items() if k in FIELD_TYPES and _of_type(v, FIELD_TYPES[k])}
            if isinstance(record.get("throttle"), dict):
                record["throttle"] = {str(k): v for k, v in record["throttle"].items() if isinstance(v, bool)}
            gpus.append(record)
    out["gpus"] = gpus
    return out


def read() -> tuple[dict[str, Any] | None, str | None]:
    """-> (facts, None) or (None, why NVML could not be used)."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, mismatch
        return None, f"NVML: {exc}"
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda_raw = _ask(pynvml.nvmlSystemGetCudaDriverVersion_v2)
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if cuda_raw else None
        count = pynvml.nvmlDeviceGetCount()
        gpus = [_gpu(pynvml, i, driver, cuda) for i in range(count)]
        return {"driver_version": driver, "cuda_version": cuda, "attached_gpus": count, "gpus": gpus}, None
    except Exception as exc:  # noqa: BLE001
        return None, f"NVML: {exc}"
    finally:
        _ask(pynvml.nvmlShutdown)
