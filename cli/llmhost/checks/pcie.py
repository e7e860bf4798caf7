"""pcie.*: link width and generation, and whether Resizable BAR exposes the whole VRAM."""

from __future__ import annotations

from llmhost import knowledge
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.host.facts import Facts, Unavailable

MIB = 1 << 20


@check("pcie.link_width", "Each GPU runs at its full PCIe link width")
def link_width(facts: Facts):
    for gpu in facts.gpu_list():
        current, maximum = gpu.get("link_width_current"), gpu.get("link_width_max")
        if current is None or maximum is None:
            yield skipped("link width not reported", gpu["address"])
        elif current < maximum:
            yield failed(f"x{current} of x{maximum}: {100 - 100 * current // maximum}% of the bus bandwidth lost",
                         "reseat the card in a full-width slot, check riser cables and the BIOS lane split "
                         "(bifurcation); M.2/slot sharing can halve a slot", gpu["address"],
                         current=current, max=maximum)
        else:
            yield passed(f"x{current} of x{maximum}", gpu["address"], current=current, max=maximum)


@check("pcie.link_speed", "Each busy GPU runs at its maximum PCIe generation")
def link_speed(facts: Facts):
    busy_pct = knowledge.thresholds()["pcie"]["busy_utilization_pct"]
    for gpu in facts.gpu_list():
        current, maximum = gpu.get("link_gen_current"), gpu.get("link_gen_max")
        if current is None or maximum is None:
            yield skipped("link generation not reported", gpu["address"])
            continue
        data = {"current": current, "max": maximum}
        util = gpu.get("utilization_pct")
        if current >= maximum:
            yield passed(f"gen {current} of {maximum}", gpu["address"], **data)
        elif util is None or util < busy_pct:
            # GPUs drop the link generation when idle to save power: not a fault.
            yield passed(f"gen {current} of {maximum} while idle (power saving; rises under load)",
                         gpu["address"], idle=True, **data)
        else:
            yield warned(f"gen {current} of {maximum} at {util:.0f}% utilisation",
                         "check the slot's and the BIOS's PCIe generation setting and the riser", gpu["address"], **data)


def _lspci_rebar(facts: Facts, address: str):
    try:
        return facts.lspci.get(address)
    except Unavailable:
        return None


@check("pcie.resizable_bar", "Resizable BAR maps the whole VRAM")
def resizable_bar(facts: Facts):
    for gpu in facts.gpu_list():
        bar1, vram = gpu.get("bar1_mib"), gpu.get("vram_mib")
        lspci = _lspci_rebar(facts, gpu["address"]) or {}
        rebar = lspci.get("rebar", {}).get(1)
        data = {"bar1_mib": bar1, "vram_mib": vram}
        if rebar and rebar["current"] and rebar["supported"] and rebar["current"] < max(rebar["supported"]):
            cur, top = rebar["current"] // MIB, max(rebar["supported"]) // MIB
            yield warned(f"BAR1 is {cur} MiB; the GPU supports up to {top} MiB"
                         + (f" for {vram} MiB of VRAM" if vram else ""),
                         "enable 'Above 4G Decoding' and 'Resizable BAR' in the firmware setup (and the GPU's "
                         "ReBAR firmware where needed)", gpu["address"], supported_mib=top, **data)
        elif bar1 is not None and vram is not None:
            if bar1 < vram:
                yield warned(f"BAR1 {bar1} MiB is smaller than VRAM {vram} MiB: Resizable BAR is off or unsupported",
                             "enable 'Above 4G Decoding' and 'Resizable BAR' in the firmware setup",
                             gpu["address"], **data)
            else:
                yield passed(f"BAR1 {bar1} MiB covers VRAM {vram} MiB", gpu["address"], **data)
        else:
            yield skipped("BAR1 size or VRAM unknown", gpu["address"])
