"""gpu.*: presence and the health NVML / nvidia-smi report per GPU."""

from __future__ import annotations

from llmhost import knowledge
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.parsers import system


def _per_gpu(facts: Facts):
    """GPUs known to the driver (the health fields need nvidia-smi or NVML)."""
    gpus = [g for g in facts.gpu_list() if g.get("driver_version")]
    if not gpus:
        raise Unavailable(f"the driver does not answer ({facts.driver_state['detail']})")
    return gpus


@check("gpu.present", "An NVIDIA GPU is present")
def present(facts: Facts):
    gpus = facts.gpus
    if not gpus and not facts.gpus_absent:
        yield skipped("no GPU source was captured (sysfs PCI bus, lspci, nvidia-smi's XML, NVML): GPUs unknown")
        return
    if not gpus:
        listed = facts.host.listdir("/sys/bus/pci/devices")
        where = "sysfs lists no NVIDIA display or 3D controller" if listed is not None else "sysfs PCI devices are not readable"
        yield failed(f"no NVIDIA GPU found: {where} and nvidia-smi/NVML report none",
                     "check the card is seated and powered, passed through to this VM, and enabled in firmware; "
                     "'lspci -d 10de:' should list it")
        return
    names = ", ".join(sorted({g.get("product") or g.get("name") or g.get("pci_device_id") or "?" for g in gpus}))
    yield passed(f"{len(gpus)} NVIDIA GPU(s): {names}", count=len(gpus),
                 addresses=[g["address"] for g in gpus])


@check("gpu.persistence_mode", "Persistence mode is on")
def persistence(facts: Facts):
    for gpu in _per_gpu(facts):
        mode = gpu.get("persistence_mode")
        if mode is None:
            yield skipped("persistence mode not reported", gpu["address"])
        elif mode:
            yield passed("persistence mode enabled", gpu["address"])
        else:
            yield warned("persistence mode disabled: the driver tears down and re-initialises the GPU between "
                         "clients, adding seconds to start-up", "enable nvidia-persistenced "
                         "('systemctl enable --now nvidia-persistenced'); roles: gpu_power", gpu["address"])


@check("gpu.ecc", "No ECC errors, retired pages or failed row remapping")
def ecc(facts: Facts):
    for gpu in _per_gpu(facts):
        subject = gpu["address"]
        if gpu.get("ecc_enabled") is None:
            yield skipped("ECC not supported or not reported", subject)
            continue
        data = {k: gpu.get(k) for k in ("ecc_enabled", "ecc_corrected", "ecc_uncorrected", "retired_pages",
                                        "retired_pending", "remap_uncorrectable", "remap_pending", "remap_failure")}
        bad = []
        if gpu.get("ecc_uncorrected"):
            bad.append(f"{gpu['ecc_uncorrected']} uncorrectable ECC errors")
        if gpu.get("retired_pages"):
            bad.append(f"{gpu['retired_pages']} retired pages")
        if gpu.get("retired_pending") or gpu.get("remap_pending"):
            bad.append("page retirement or row remap pending")
        if gpu.get("remap_failure"):
            bad.append("row remapping failed")
        if bad:
            yield failed("; ".join(bad), "drain the GPU and reset it ('nvidia-smi -r') or reboot to apply pending "
                         "retirement; a row-remap failure or growing retired pages means RMA", subject, **data)
        elif gpu.get("ecc_corrected"):
            yield warned(f"{gpu['ecc_corrected']} correctable ECC errors", "watch the count; a rising count "
                         "predicts uncorrectable errors", subject, **data)
        elif not gpu["ecc_enabled"]:
            yield warned("ECC disabled", "enable with 'nvidia-smi -e 1' and reset the GPU if this GPU should "
                         "protect its memory", subject, **data)
        else:
            yield passed("ECC enabled, no errors, no retired or pending pages", subject, **data)


@check("gpu.temperature", "Temperature below the warning and slowdown thresholds")
def temperature(facts: Facts):
    limits = knowledge.thresholds()["gpu"]
    for gpu in _per_gpu(facts):
        temp, slowdown = gpu.get("temperature_c"), gpu.get("slowdown_c")
        if temp is None:
            yield skipped("temperature not reported", gpu["address"])
            continue
        near = slowdown is not None and temp >= slowdown - limits["slowdown_margin_c"]
        data = {"temperature_c": temp, "slowdown_c": slowdown}
        if temp >= limits["temperature_warn_c"] or near:
            yield warned(f"{temp:.0f} °C (warn at {limits['temperature_warn_c']} °C, slowdown at "
                         f"{slowdown if slowdown is not None else '?'} °C)",
                         "check airflow, fan curves and the room; clocks drop at the slowdown threshold",
                         gpu["address"], **data)
        else:
            yield passed(f"{temp:.0f} °C", gpu["address"], **data)


@check("gpu.throttle", "No hardware, thermal or power-brake slowdown active")
def throttle(facts: Facts):
    limits = knowledge.thresholds()["gpu"]
    for gpu in _per_gpu(facts):
        reasons = gpu.get("throttle")
        if reasons is None:
            yield skipped("clocks event reasons not reported", gpu["address"])
            continue
        active = sorted(r for r, on in reasons.items() if on)
        bad = [r for r in active if r in limits["throttle_fail"]]
        soft = [r for r in active if r in limits["throttle_warn"]]
        if bad:
            yield failed(f"clocks slowed by {', '.join(bad)}", "hardware slowdown: check cooling, power "
                         "cables and PSU capacity; see 'nvidia-smi -q -d PERFORMANCE'", gpu["address"], active=active)
        elif soft:
            yield warned(f"clocks capped by {', '.join(soft)}", "the power limit caps clocks under load; raise "
                         "it toward the default if that is not intended", gpu["address"], active=active)
        else:
            yield passed("no slowdown active" + (f" ({', '.join(active)})" if active else ""), gpu["address"],
                         active=active)


@check("gpu.power_limit", "Power limit not below the default")
def power_limit(facts: Facts):
    for gpu in _per_gpu(facts):
        current, default = gpu.get("power_limit_w"), gpu.get("power_default_w")
        if current is None or default is None:
            yield skipped("power limits not reported", gpu["address"])
            continue
        data = {"power_limit_w": current, "power_default_w": default,
                "power_min_w": gpu.get("power_min_w"), "power_max_w": gpu.get("power_max_w")}
        if current < default:
            yield warned(f"power limit {current:.0f} W is below the default {default:.0f} W",
                         "raise it with 'nvidia-smi -pl' or set llmhost_gpu_power_limit_w, unless the cap is "
                         "intended", gpu["address"], **data)
        else:
            yield passed(f"power limit {current:.0f} W (default {default:.0f} W)", gpu["address"], **data)


@check("gpu.mig", "MIG mode as intended")
def mig(facts: Facts):
    for gpu in _per_gpu(facts):
        current, pending = gpu.get("mig_current"), gpu.get("mig_pending")
        if current is None:
            yield passed("MIG not supported", gpu["address"])
        elif current != pending and pending is not None:
            yield warned(f"MIG {'enabled' if current else 'disabled'} now, "
                         f"{'enabled' if pending else 'disabled'} after the next GPU reset",
                         "reset the GPU ('nvidia-smi -r') to apply the pending MIG mode", gpu["address"])
        elif current:
            yield warned("MIG enabled: the GPU is split into instances and one runtime sees only one instance",
                         "disable with 'nvidia-smi -mig 0' and a GPU reset to give one model the whole GPU",
                         gpu["address"], mig=True)
        else:
            yield passed("MIG disabled", gpu["address"], mig=False)


FABRIC_REMEDY = ("install Fabric Manager of exactly the driver's version and 'systemctl enable --now "
                 "nvidia-fabricmanager' (role nvidia_driver does, nvidia_driver_fabricmanager: auto); "
                 "'journalctl -u nvidia-fabricmanager' says why it stopped")


@check("gpu.fabric_manager", "NVSwitch systems: Fabric Manager has set up the NVLink fabric", needs_gpu=True)
def fabric_manager(facts: Facts):
    """Without Fabric Manager an HGX/DGX baseboard's GPUs fail every CUDA call with error 802."""
    reported = [g for g in facts.gpus if g.get("fabric_state")]
    if reported:  # Hopper and later report the fabric per GPU; this is the authority where present
        for gpu in reported:
            state, status = gpu["fabric_state"], gpu.get("fabric_status")
            data = {"fabric_state": state, "fabric_status": status}
            if state == "Completed" and status == "Success":
                yield passed("NVLink fabric registration completed", gpu["address"], **data)
            elif state == "Completed":
                yield failed(f"NVLink fabric registration completed with status {status}", FABRIC_REMEDY,
                             gpu["address"], **data)
            elif state == "In Progress":
                yield warned("NVLink fabric registration in progress: CUDA fails with error 802 until it completes",
                             "wait a minute and check again; if it stays, " + FABRIC_REMEDY, gpu["address"], **data)
            else:
                yield failed(f"NVLink fabric {state}: CUDA fails with error 802 ('system not yet initialized')",
                             FABRIC_REMEDY, gpu["address"], **data)
        return
    switches = facts.nvswitch_count
    if not switches:
        yield passed("no NVSwitch on the PCI bus: Fabric Manager is not needed", nvswitches=0)
        return
    state = facts.command("fabricmanager-active").out.strip() or "not installed"
    if state == "active":
        yield passed(f"{switches} NVSwitch chip(s), nvidia-fabricmanager active", nvswitches=switches)
    else:
        yield failed(f"{switches} NVSwitch chip(s) but nvidia-fabricmanager is {state}: CUDA fails with error 802 "
                     "('system not yet initialized')", FABRIC_REMEDY, nvswitches=switches, service=state)


@check("gpu.xid", "No Xid errors in the kernel log", needs_gpu=True)
def xid(facts: Facts):
    result = facts.command("kernel-log")
    if result.rc != 0 and not result.out:
        yield skipped(f"kernel log not readable: {result.err.strip()[:80] or 'no output'}")
        return
    events = system.xids(result.out)
    serious = set(knowledge.thresholds()["xid"]["fail"])
    if not events:
        yield passed("no Xid errors since boot")
        return
    by_code = sorted({e["xid"] for e in events})
    bad = [c for c in by_code if c in serious]
    summary = f"{len(events)} Xid event(s) since boot: " + ", ".join(map(str, by_code))
    if bad:
        yield failed(summary, f"Xid {', '.join(map(str, bad))} mean a GPU or memory fault: drain, reset, check "
                     "NVIDIA's Xid catalogue; repeated ones mean RMA", codes=by_code, last=events[-1]["line"])
    else:
        yield warned(summary, "look the codes up in NVIDIA's Xid catalogue; most point at the application",
                     codes=by_code, last=events[-1]["line"])
