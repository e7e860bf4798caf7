"""numa.* and cpu.*: GPU locality, automatic NUMA balancing, SIMD for CPU offload, frequency governor."""

from __future__ import annotations

from llmhost import knowledge
from llmhost.checks import check, passed, skipped, warned
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.parsers import is_number


@check("numa.gpu_affinity", "Each GPU's NUMA node and local CPUs are known")
def gpu_affinity(facts: Facts):
    for place in facts.gpu_placements:
        node, cpus, nodes = place["numa_node"], place["cpus"], place["numa_nodes"]
        if node is None:
            if nodes is None:
                yield skipped("NUMA node and layout not captured", place["address"])
            else:
                yield warned(f"NUMA node unknown on a {len(nodes)}-node host", "read it from "
                             f"/sys/bus/pci/devices/{place['address']}/numa_node; firmware may hide it (enable ACPI "
                             "SRAT/NUMA in the BIOS)", place["address"])
        elif place["origin"] == "single NUMA node":
            yield passed("single NUMA node: every CPU is local", place["address"], numa_node=0, cpus=cpus)
        else:
            yield passed(f"NUMA node {node}, local CPUs {cpus or '?'}", place["address"], numa_node=node, cpus=cpus)


@check("numa.balancing", "Automatic NUMA balancing is off on multi-node hosts")
def balancing(facts: Facts):
    want = knowledge.tuned_sysctl("kernel.numa_balancing")
    try:
        value = facts.sysctl("kernel.numa_balancing")
    except Unavailable:
        if facts.host.knows("/proc/sys/kernel"):
            yield passed("kernel has no automatic NUMA balancing")
        else:
            yield skipped("kernel.numa_balancing was not captured")
        return
    try:
        nodes = len(facts.numa_nodes) or 1
    except Unavailable:
        nodes = 1
    if value != want and nodes > 1:
        yield warned(f"kernel.numa_balancing={value} on {nodes} NUMA nodes: pages of a pinned runtime migrate",
                     f"set kernel.numa_balancing={want} (role host_tuning)", value=value, nodes=nodes)
    else:
        yield passed(f"kernel.numa_balancing={value}, {nodes} NUMA node(s)", value=value, nodes=nodes)


@check("cpu.simd", "The CPU has the vector extensions CPU offload uses")
def simd(facts: Facts):
    flags = facts.cpu_flags
    limits = knowledge.thresholds()["cpu"]
    missing = [f for f in limits["simd_wanted"] if f not in flags]
    extra = [f for f in limits["simd_better"] if f in flags]
    data = {"has": sorted(set(limits["simd_wanted"] + limits["simd_better"]) & flags)}
    if missing:
        yield warned(f"no {', '.join(missing)}: layers offloaded to the CPU run several times slower",
                     "keep the whole model on the GPU, or use a host with AVX2", **data)
    else:
        note = " (AMX is advertised: a VM can advertise it and still fault on it; llmhost builds without it)" \
            if "amx_tile" in flags else ""
        yield passed(f"{', '.join(limits['simd_wanted'] + extra)}{note}", **data)


@check("cpu.governor", "CPU frequency governor is performance")
def governor(facts: Facts):
    want = knowledge.tuning()["cpu_governor"]["value"]
    cpus = [c for c in (facts.host.listdir("/sys/devices/system/cpu") or []) if c.startswith("cpu") and is_number(c[3:])]
    governors = {}
    for cpu in cpus:
        value = facts.host.read(f"/sys/devices/system/cpu/{cpu}/cpufreq/scaling_governor")
        if value:
            governors.setdefault(value.strip(), []).append(cpu)
    if not governors:
        yield skipped("no cpufreq scaling governor exposed (VM or firmware-managed frequency)")
        return
    others = sorted(g for g in governors if g != want)
    if others:
        yield warned(f"governor {', '.join(others)} on {sum(len(governors[g]) for g in others)} of {len(cpus)} CPUs",
                     f"set the '{want}' governor (role host_tuning, or 'cpupower frequency-set -g {want}')",
                     governors=sorted(governors))
    else:
        yield passed(f"{want} on all {len(cpus)} CPUs")
