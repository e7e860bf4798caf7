"""compat.*: the installed driver against the GPU, the CUDA toolkit, the kernel and NVIDIA's lifecycle."""

from __future__ import annotations

import re

from llmhost import knowledge
from llmhost.knowledge import compat
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.errors import LlmhostError
from llmhost.host.facts import Facts, Unavailable

def _emit(reasons, subject="host", remedy=""):
    for reason in reasons:
        status = reason.level  # compat speaks preflight's vocabulary
        if status == "pass":
            yield passed(reason.message, subject)
        elif status == "warn":
            yield warned(reason.message, remedy, subject)
        else:
            yield failed(reason.message, remedy, subject)


def _os_or_none(facts: Facts) -> str | None:
    try:
        return facts.os_key()
    except Unavailable:
        return None


def _recommendation(facts: Facts, arch: str | None, devices: list[dict] | None = None) -> str:
    try:
        rec = compat.recommend(arch, _os_or_none(facts), devices=devices)
    except LlmhostError:
        return "'llmhost compat' names a branch for this GPU and OS"
    if not rec.get("branch"):
        return "no supported branch fits; see 'llmhost compat'"
    return f"install R{rec['branch']} with {rec['modules']} modules ('llmhost compat' lists the packages)"


@check("compat.gpu_driver", "Driver branch and module flavour support each GPU's architecture")
def gpu_driver(facts: Facts):
    driver = facts.driver_version()
    flavour = (facts.kernel_module or {}).get("flavour")
    for gpu in facts.gpu_list():
        arch, device = gpu.get("architecture"), gpu.get("device")
        if not arch and not device:
            yield skipped(f"architecture of {gpu.get('name') or gpu.get('pci_device_id')} unknown", gpu["address"])
            continue
        yield from _emit(compat.gpu_driver(arch, driver, flavour, device), gpu["address"],
                         _recommendation(facts, arch, [device] if device else None))


@check("compat.driver_cuda", "The installed CUDA toolkit runs on this driver")
def driver_cuda(facts: Facts):
    driver = facts.driver_version()
    result = facts.command("nvcc-version")
    match = re.search(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)", result.out)
    if not match:
        yield skipped("nvcc printed no release version")
        return
    cuda = knowledge.parse_cuda(match.group(2))
    remedy = f"upgrade the driver to at least {knowledge.cuda_min_driver(cuda)} or install an older toolkit"
    yield from _emit(compat.driver_cuda(driver, cuda), remedy=remedy)


@check("compat.kernel_driver", "The kernel is one the driver branch supports")
def kernel_driver(facts: Facts):
    driver = facts.driver_version()
    yield from _emit(compat.kernel_driver(facts.kernel_release, driver, _os_or_none(facts)),
                     remedy="use DKMS with headers for this kernel, or a kernel NVIDIA validates for this branch")


@check("compat.driver_eol", "The driver branch is inside NVIDIA's support window")
def driver_eol(facts: Facts):
    driver = facts.driver_version()
    arch = next((g.get("architecture") for g in facts.gpus if g.get("architecture")), None)
    yield from _emit(compat.driver_eol(driver), remedy=_recommendation(facts, arch))
