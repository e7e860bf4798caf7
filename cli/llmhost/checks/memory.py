"""memory.*: enough RAM for the VRAM, swappiness, transparent and explicit huge pages, memlock, swap."""

from __future__ import annotations

from llmhost import knowledge
from llmhost.checks import check, passed, skipped, warned
from llmhost.host.facts import Facts
from llmhost.host.parsers import ParseError, is_number, system

KIB_PER_MIB = 1024
THP = "/sys/kernel/mm/transparent_hugepage/enabled"
HUGEPAGES = "/sys/kernel/mm/hugepages"


@check("memory.ram_vs_vram", "RAM is at least twice the total VRAM")
def ram_vs_vram(facts: Facts):
    ratio = knowledge.thresholds()["memory"]["ram_to_vram_ratio"]
    ram_mib = facts.meminfo["MemTotal"] // KIB_PER_MIB
    vram = [g.get("vram_mib") for g in facts.gpus]
    if not facts.gpus:
        yield skipped(f"no NVIDIA GPU (RAM {ram_mib} MiB)")
        return
    if any(v is None for v in vram):
        yield skipped("VRAM of some GPU unknown")
        return
    total = sum(vram)
    data = {"ram_mib": ram_mib, "vram_mib": total, "ratio": round(ram_mib / total, 2)}
    if ram_mib < ratio * total:
        yield warned(f"RAM {ram_mib} MiB is {ram_mib / total:.1f}x VRAM {total} MiB (want >= {ratio:g}x)",
                     "loading weights stages them through page cache: add RAM, or expect slow loads and no room "
                     "for CPU offload", **data)
    else:
        yield passed(f"RAM {ram_mib} MiB is {ram_mib / total:.1f}x VRAM {total} MiB", **data)


@check("memory.swappiness", "vm.swappiness is low")
def swappiness(facts: Facts):
    want = knowledge.tuned_sysctl("vm.swappiness")
    value = facts.sysctl("vm.swappiness")
    if value > want:
        yield warned(f"vm.swappiness={value} (want <= {want})", f"set vm.swappiness={want} (role host_tuning)",
                     value=value)
    else:
        yield passed(f"vm.swappiness={value}", value=value)


@check("memory.thp", "Transparent huge pages are not disabled")
def thp(facts: Facts):
    text = facts.file(THP)
    try:
        mode = system.selected(text)
    except ParseError as exc:
        yield skipped(f"{THP}: {exc}")
        return
    ok = knowledge.thresholds()["memory"]["thp_ok"]
    if mode in ok:
        yield passed(f"THP {mode}", mode=mode)
    else:
        want = knowledge.tuning()["thp"]["value"]
        yield warned(f"THP {mode}: large model buffers get 4 KiB pages and more TLB misses",
                     f"set THP to {want} (role host_tuning)", mode=mode)


def _hugepage_pools(facts: Facts) -> dict[int, int]:
    """{page size KiB: pages reserved} per pool in /sys/kernel/mm/hugepages (2 MiB and 1 GiB pools alike);
    meminfo's HugePages_Total counts the default size only."""
    pools = {}
    for name in facts.host.listdir(HUGEPAGES) or []:
        size = name.removeprefix("hugepages-").removesuffix("kB")
        count = facts.host.read(f"{HUGEPAGES}/{name}/nr_hugepages")
        if is_number(size) and count is not None and is_number(count.strip()):
            pools[int(size)] = int(count.strip())
    if not pools:
        info = facts.meminfo
        pools[info.get("Hugepagesize", 2048)] = info.get("HugePages_Total", 0)
    return pools


@check("memory.hugepages", "Reserved huge pages leave room for the rest")
def hugepages(facts: Facts):
    pools = _hugepage_pools(facts)
    reserved_mib = sum(size * count for size, count in pools.items()) // KIB_PER_MIB
    summary = ", ".join(f"{count} x {size // 1024} MiB" for size, count in sorted(pools.items()) if count)
    data = {"pools_kib": {str(size): count for size, count in pools.items()}, "reserved_mib": reserved_mib}
    ram_mib = facts.meminfo["MemTotal"] // KIB_PER_MIB
    limit = knowledge.thresholds()["memory"]["hugepages_reserved_warn_ratio"]
    if reserved_mib > limit * ram_mib:
        yield warned(f"huge pages ({summary}) reserve {reserved_mib} MiB of {ram_mib} MiB RAM",
                     "reserved huge pages are unusable by anything else: lower vm.nr_hugepages or the 1 GiB pool",
                     **data)
    elif reserved_mib:
        yield passed(f"huge pages reserved: {summary} ({reserved_mib} MiB)", **data)
    else:
        yield passed("no huge pages reserved (runtimes use THP)", **data)


@check("memory.memlock", "Locked-memory limit allows mlock of model weights")
def memlock(facts: Facts):
    text = facts.file("/proc/self/limits")
    try:
        soft, hard = system.limit(text, "Max locked memory")
    except ParseError as exc:
        yield skipped(str(exc))
        return
    if soft is None:
        yield passed("memlock unlimited")
    else:
        yield warned(f"memlock limit {soft // 1024} KiB for this session: '--mlock' cannot pin a model",
                     "llmhost's service unit sets LimitMEMLOCK=infinity; for shells raise 'memlock' in "
                     "/etc/security/limits.d", soft=soft, hard=hard)


@check("memory.swap", "The host is not swapping")
def swap(facts: Facts):
    info = facts.meminfo
    total, free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
    used_mib = (total - free) // KIB_PER_MIB
    limit = knowledge.thresholds()["memory"]["swap_used_warn_mib"]
    if not total:
        yield passed("no swap configured")
    elif used_mib > limit:
        yield warned(f"{used_mib} MiB of swap in use", "find what swaps ('smem -s swap'); a swapped-out "
                     "runtime stalls for seconds", used_mib=used_mib)
    else:
        yield passed(f"swap {total // KIB_PER_MIB} MiB, {used_mib} MiB in use", used_mib=used_mib)
