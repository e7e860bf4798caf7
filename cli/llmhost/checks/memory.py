"""memory.*: enough RAM for the VRAM, swappiness, transparent and explicit huge pages, memlock, swap."""

from __future__ import annotations

from llmhost import knowledge
from llmhost.checks import check, passed, skipped, warned
from llmhost.facts import Facts
from llmhost.parsers import ParseError, system

KIB_PER_MIB = 1024
THP = "/sys/kernel/mm/transparent_hugepage/enabled"


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


@check("memory.hugepages", "Reserved huge pages leave room for the rest")
def hugepages(facts: Facts):
    info = facts.meminfo
    total, size_kib = info.get("HugePages_Total", 0), info.get("Hugepagesize", 2048)
    reserved_mib = total * size_kib // KIB_PER_MIB
    data = {"count": total, "size_kib": size_kib, "free": info.get("HugePages_Free", 0), "reserved_mib": reserved_mib}
    ram_mib = info["MemTotal"] // KIB_PER_MIB
    limit = knowledge.thresholds()["memory"]["hugepages_reserved_warn_ratio"]
    if reserved_mib > limit * ram_mib:
        yield warned(f"{total} x {size_kib} KiB huge pages reserve {reserved_mib} MiB of {ram_mib} MiB RAM",
                     "reserved huge pages are unusable by anything else: lower vm.nr_hugepages", **data)
    elif total:
        yield passed(f"{total} x {size_kib} KiB huge pages reserved ({reserved_mib} MiB), {data['free']} free", **data)
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
