"""Compatibility verdicts: GPU architecture x driver x CUDA x OS x kernel, from the knowledge base.

Each rule returns Reasons in preflight's vocabulary; a verdict is the worst of them: any 'fail' ->
incompatible, any minor-version warning -> minor-compatible, else compatible. The preflight compat.*
checks call the same rules. A GPU known by its PCI id (knowledge.gpu_by_pci_id) is also judged against
NVIDIA's device lists: the first driver of each branch that lists it, boards that need open modules,
and legacy branches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from llmhost import knowledge
from llmhost.errors import LlmhostError
from llmhost.knowledge.versions import CudaVersion, DriverVersion, parse_driver, parse_kernel, upstream_driver

VERDICTS = ("compatible", "minor-compatible", "incompatible")


@dataclass
class Reason:
    """One finding, in preflight's vocabulary (pass | warn | fail). A driver that runs a toolkit only
    under CUDA's minor-version compatibility is a warning with minor=True: it makes the verdict
    'minor-compatible' rather than 'compatible'."""
    level: str  # pass | warn | fail
    rule: str
    message: str
    minor: bool = False

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Verdict:
    verdict: str
    reasons: list[Reason]
    recommended: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [r.as_dict() for r in self.reasons],
                "recommended": self.recommended}


def verdict_of(reasons: list[Reason]) -> str:
    if any(r.level == "fail" for r in reasons):
        return "incompatible"
    return "minor-compatible" if any(r.minor for r in reasons) else "compatible"


# --- rules -------------------------------------------------------------------------------------

def _label(device: dict[str, Any] | None, fallback: str | None) -> str | None:
    """'10de:2335 (NVIDIA H200)' for a GPU known by its PCI id, else its name or the fallback."""
    if device and device.get("pci_id"):
        return f"10de:{device['pci_id']} ({device['name']})"
    return (device or {}).get("name") or fallback


def _lists_conclude(device: dict[str, Any]) -> bool:
    """Whether a device list's silence means 'not supported'. NVIDIA's lists lag for some boards of
    older architectures (the Tesla T4 enters the open-module table only in R575, and Debian's
    supported-gpus.json never lists it), so silence concludes only for architectures born inside the
    tables' span (Hopper and later), or for a device that a newer held list adds."""
    first_table = int(knowledge.gpu_table()["open_module_branches"][0])
    arch = device.get("arch")
    if arch and parse_driver(knowledge.architecture(arch)["min_driver"]).branch >= first_table:
        return True
    held = knowledge.gpu_table()["supported_lists"]
    listed = [v for v in held if v in device.get("listed_in", [])]
    return bool(listed) and listed[0] != held[0]


def device_driver(device: dict[str, Any], driver: DriverVersion) -> list[Reason]:
    """The driver's own device lists: a GPU newer than a driver release finds no device there, and a
    legacy GPU left the lists after its last branch."""
    label = _label(device, "this GPU")
    legacy = device.get("legacy_branch")
    if legacy and driver.branch > legacy:
        return [Reason("fail", "compat.gpu_driver",
                       f"{label} is a legacy GPU: its last driver branch is R{legacy}; {driver} is R{driver.branch}")]
    listed = device.get("listed_in", [])
    for held in knowledge.gpu_table()["supported_lists"]:
        if parse_driver(held).branch != driver.branch:
            continue
        if held in listed and driver >= parse_driver(held):
            return [Reason("pass", "compat.gpu_driver", f"{label} is in R{driver.branch}'s device list ({held})")]
        if held not in listed and _lists_conclude(device):
            return [Reason("fail", "compat.gpu_driver",
                           f"{label} is not in R{driver.branch}'s device list ({held}): the driver finds no device")]
    floors = device.get("first_driver") or {}
    if not floors:
        return []
    span = sorted(int(b) for b in knowledge.gpu_table()["open_module_branches"])
    first_branch, first_version = min(floors.items())
    if driver.branch in floors:
        floor = parse_driver(floors[driver.branch])
        if driver >= floor:
            return [Reason("pass", "compat.gpu_driver", f"{label} is in R{driver.branch}'s device list from {floor}")]
        if _lists_conclude(device):
            return [Reason("fail", "compat.gpu_driver",
                           f"{label} enters R{driver.branch}'s device list at {floor}; {driver} is older")]
        return []
    if driver.branch <= span[-1] and _lists_conclude(device):
        return [Reason("fail", "compat.gpu_driver",
                       f"{label} is not in R{driver.branch}'s device list (the driver finds no device); NVIDIA lists "
                       f"it from R{first_branch} {first_version}")]
    return []


def gpu_driver(arch_name: str | None, driver: DriverVersion, modules: str | None = None,
               device: dict[str, Any] | None = None) -> list[Reason]:
    arch = knowledge.architecture(arch_name) if arch_name else None
    reasons = device_driver(device, driver) if device else []
    allowed = (device or {}).get("modules") or (arch["modules"] if arch else None)
    what = _label(device, arch_name) if device and device.get("pci_id") else arch_name
    if arch:
        floor = parse_driver(arch["min_driver"])
        if driver < floor:
            reasons.append(Reason("fail", "compat.gpu_driver",
                                  f"{arch_name} needs driver >= {floor}; {driver} is older"))
        last = arch.get("last_branch")
        if last and driver.branch > last and not (device or {}).get("legacy_branch"):
            reasons.append(Reason("fail", "compat.gpu_driver",
                                  f"{arch_name} is not supported after branch R{last}; driver {driver} is R{driver.branch}"))
    if modules and allowed and modules not in allowed:
        reasons.append(Reason("fail", "compat.gpu_driver",
                              f"{what} needs {' or '.join(allowed)} kernel modules, not {modules} "
                              "('No devices were found')"))
    if not reasons:
        reasons.append(Reason("pass", "compat.gpu_driver", f"driver {driver} supports {what or 'this GPU'}"
                              + (f" with {modules} modules" if modules else "")))
    elif modules and not any(r.level == "fail" for r in reasons):
        reasons[-1].message += f", with {modules} modules"
    return reasons


def driver_cuda(driver: DriverVersion, cuda: CudaVersion) -> list[Reason]:
    need = knowledge.cuda_min_driver(cuda)
    if driver >= need:
        return [Reason("pass", "compat.driver_cuda", f"CUDA {cuda} needs driver >= {need}; {driver} meets it")]
    floor = knowledge.minor_version_floor(cuda.major)
    if floor and driver >= floor:
        limits = knowledge.load("cuda")["minor_version_limits"]
        return [Reason("warn", "compat.driver_cuda",
                       f"CUDA {cuda} wants driver >= {need}; {driver} runs it only under minor-version "
                       f"compatibility (floor {floor} for CUDA {cuda.major}.x): {limits}", minor=True)]
    return [Reason("fail", "compat.driver_cuda",
                   f"CUDA {cuda} needs driver >= {need}"
                   + (f" (or >= {floor} under minor-version compatibility)" if floor else "")
                   + f"; {driver} is older")]


def gpu_cuda(arch_name: str, cuda: CudaVersion) -> list[Reason]:
    arch = knowledge.architecture(arch_name)
    first = knowledge.parse_cuda(arch["first_cuda"])
    if (cuda.major, cuda.minor) < (first.major, first.minor):
        return [Reason("fail", "compat.gpu_cuda", f"{arch_name} needs CUDA >= {first.short}; {cuda.short} predates it")]
    last_major = arch.get("last_cuda_major")
    if last_major and cuda.major > last_major:
        return [Reason("fail", "compat.gpu_cuda",
                       f"CUDA {cuda.major} dropped {arch_name}; the last toolkit for it is CUDA {last_major}.x")]
    return [Reason("pass", "compat.gpu_cuda", f"CUDA {cuda.short} supports {arch_name}")]


def driver_eol(driver: DriverVersion, today: dt.date | None = None) -> list[Reason]:
    today = today or dt.date.today()
    info = knowledge.branch_info(driver.branch)
    if not info:
        return [Reason("warn", "compat.driver_eol", f"branch R{driver.branch} is not in the lifecycle table")]
    eol = dt.date.fromisoformat(info["eol"])
    warn_days = knowledge.thresholds()["driver"]["eol_warn_days"]
    label = f"R{driver.branch} {info['type']}, end of life {eol}"
    if today > eol:
        return [Reason("warn", "compat.driver_eol", f"{label}: past end of life, no more security fixes")]
    if (eol - today).days <= warn_days:
        return [Reason("warn", "compat.driver_eol", f"{label}: {(eol - today).days} days left")]
    return [Reason("pass", "compat.driver_eol", label)]


def kernel_driver(kernel: str, driver: DriverVersion, os_id: str | None) -> list[Reason]:
    release = parse_kernel(kernel)
    series = f"{release[0]}.{release[1]}"
    if os_id:
        try:
            plat = knowledge.platform(os_id)
        except LlmhostError:
            plat = {}
        validated = (plat.get("kernels_validated") or {}).get(str(driver.branch))
        if validated and series not in validated:
            return [Reason("warn", "compat.kernel_driver",
                           f"kernel {series} is not among NVIDIA's validated precompiled kernels for R{driver.branch} "
                           f"on {os_id} ({', '.join(validated)}): the module must be built with DKMS")]
        if validated:
            return [Reason("pass", "compat.kernel_driver", f"kernel {series} is validated for R{driver.branch} on {os_id}")]
    return [Reason("pass", "compat.kernel_driver", f"no known constraint between kernel {series} and R{driver.branch}")]


def os_branch(os_id: str, driver: DriverVersion) -> list[Reason]:
    plat = knowledge.platform(os_id)
    packaged = knowledge.packaged_branches(os_id)
    if driver.branch in packaged:
        return [Reason("pass", "compat.os_driver", f"R{driver.branch} is packaged for {os_id}")]
    where = "NVIDIA's repository" if plat.get("nvidia_repo") else "no repository known to llmhost"
    return [Reason("warn", "compat.os_driver",
                   f"R{driver.branch} is not in {os_id}'s own packages ({', '.join(f'R{b}' for b in packaged) or 'none'}); "
                   f"install it from {where}")]


# --- recommendation ------------------------------------------------------------------------------

def _driver_packages(plat: dict[str, Any], from_distribution: bool, flavour: str, branch: int) -> list[str]:
    """Debian's NVIDIA-repository packages differ from its own; other OSes name both alike."""
    if from_distribution or plat["family"] != "debian":
        return knowledge.packages_for(plat["id"], flavour, branch)
    return [p.format(branch=branch) for p in plat["nvidia_repo_packages"][flavour]]


def allowed_modules(arch_name: str | None, devices: list[dict[str, Any]] | None = None) -> list[str]:
    """The module flavours that drive every one of these GPUs."""
    allowed = list(knowledge.architecture(arch_name)["modules"]) if arch_name else ["open", "proprietary"]
    for device in devices or []:
        allowed = [m for m in allowed if m in device.get("modules", allowed)]
    return allowed


def _drives_all(devices: list[dict[str, Any]] | None, driver: DriverVersion) -> bool:
    return all(verdict_of(device_driver(d, driver)) != "incompatible" for d in devices or [])


def recommend(arch_name: str | None, os_id: str | None, modules: str | None = None,
              today: dt.date | None = None, devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The driver branch, module flavour, packages and repository llmhost would install."""
    today = today or dt.date.today()
    arch = knowledge.architecture(arch_name) if arch_name else None
    plat = knowledge.platform(os_id) if os_id else None
    distro_branches = sorted(int(b) for b in (plat or {}).get("distro_branches", {}))

    def fits(branch: int) -> bool:
        info = knowledge.branch_info(branch)
        if not info or dt.date.fromisoformat(info["eol"]) < today:
            return False
        if arch and (branch > arch.get("last_branch", 10_000) or branch < parse_driver(arch["min_driver"]).branch):
            return False
        return _drives_all(devices, parse_driver(f"{branch}.999.99"))

    preference = knowledge.load("branches")["preference"]
    branch = next((b for b in preference if fits(b)), None)
    distro_ok = [b for b in distro_branches if fits(b)]
    # A branch the OS ships itself beats the same branch from NVIDIA's repository (signed for the
    # distribution's kernels, reachable from distribution mirrors in air-gapped sites).
    source = "distribution" if branch in distro_branches else "nvidia-repository"
    if branch is None:
        return {"branch": None, "reason": "no supported, non-EOL branch fits this GPU"}
    allowed = allowed_modules(arch_name, devices)
    # NVIDIA made open modules the default from R560 for the GPUs that support them. A flavour the
    # user asked for that the GPU cannot use is reported by the verdict; recommend one that works.
    default = "open" if "open" in allowed and (branch >= 560 or "proprietary" not in allowed) else "proprietary"
    flavour = modules if modules in allowed else default
    newest = knowledge.newest_cuda_for_driver(parse_driver(f"{branch}.999.99"),
                                              max_major=arch.get("last_cuda_major") if arch else None)
    rec: dict[str, Any] = {"branch": branch, "modules": flavour, "source": source,
                           "newest_cuda": newest.short if newest else None}
    if plat:
        rec["os"] = plat["id"]
        rec["repository"] = plat["repository"]["kind"] if source == "distribution" else plat.get("nvidia_repo")
        rec["packages"] = _driver_packages(plat, source == "distribution", flavour, branch)
        if distro_ok and source != "distribution":
            rec["distribution_alternative"] = {"branch": max(distro_ok),
                                               "packages": knowledge.packages_for(plat["id"], flavour, max(distro_ok))}
    return rec


def evaluate(arch_name: str | None = None, driver: DriverVersion | None = None, cuda: CudaVersion | None = None,
             modules: str | None = None, os_id: str | None = None, kernel: str | None = None,
             today: dt.date | None = None, device: dict[str, Any] | None = None) -> Verdict:
    """device: knowledge.resolve_gpu's record, for the per-device rules (device lists, boards that
    need open modules, legacy branches) on top of the architecture's."""
    reasons: list[Reason] = []
    devices = [device] if device else []
    gpu_label = _label(device, arch_name) if device and device.get("pci_id") else arch_name
    if (arch_name or device) and driver:
        reasons += gpu_driver(arch_name, driver, modules, device)
    elif (arch_name or device) and modules:
        allowed = allowed_modules(arch_name, devices)
        if modules not in allowed:
            reasons.append(Reason("fail", "compat.gpu_driver",
                                  f"{gpu_label} needs {' or '.join(allowed)} kernel modules, not {modules}"))
    if driver and cuda:
        reasons += driver_cuda(driver, cuda)
    if arch_name and cuda:
        reasons += gpu_cuda(arch_name, cuda)
    if driver:
        reasons += driver_eol(driver, today)
        if os_id:
            reasons += os_branch(os_id, driver)
        if kernel:
            reasons += kernel_driver(kernel, driver, os_id)
    recommended = recommend(arch_name, os_id, modules, today, devices) if arch_name or os_id or device else {}
    if (arch_name or device) and not driver:
        if recommended.get("branch"):
            reasons.append(Reason("pass", "compat.branch_available",
                                  f"R{recommended['branch']} supports {gpu_label}"
                                  + (f" and is installable on {os_id}" if os_id else "")))
        else:
            legacy = (device or {}).get("legacy_branch")
            reasons.append(Reason("fail", "compat.branch_available",
                                  f"no supported, non-EOL driver branch for {gpu_label}"
                                  + (f" on {os_id}" if os_id else "")
                                  + (f": its last branch is the legacy R{legacy}" if legacy else "")))
    if not reasons:
        raise LlmhostError("nothing to compare: give --gpu, or at least two of --driver, --cuda, --modules, --os "
                           "(or run on a host with a GPU or driver)")
    return Verdict(verdict_of(reasons), reasons, recommended)


def install_plan(os_id: str, arch_name: str | None = None, modules: str = "auto", source: str = "auto",
                 branch: int | str | None = None, today: dt.date | None = None,
                 devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the nvidia_driver role installs: {branch, modules, source, packages, repository, version}.

    source 'distribution' uses the branch the OS itself ships (Debian's non-free, Ubuntu's -server
    packages); 'nvidia' uses NVIDIA's repository; 'auto' takes the recommendation.
    """
    if modules not in ("auto", "open", "proprietary"):
        raise LlmhostError(f"nvidia_driver_modules {modules!r} is not valid: expected auto, open or proprietary")
    if source not in ("auto", "distribution", "nvidia"):
        raise LlmhostError(f"nvidia_driver_source {source!r} is not valid: expected auto, distribution or nvidia")
    plat = knowledge.platform(os_id)
    rec = recommend(arch_name, os_id, None if modules == "auto" else modules, today, devices)
    allowed = allowed_modules(arch_name, devices)
    if modules != "auto" and modules not in allowed:
        raise LlmhostError(f"nvidia_driver_modules {modules!r} cannot drive {arch_name or 'these'} GPUs: expected "
                           f"{' or '.join(allowed)}")
    distro_branches = {int(b): row for b, row in plat.get("distro_branches", {}).items()}
    if source == "auto":
        source = "distribution" if rec.get("source") == "distribution" else "nvidia"
    if source == "distribution":
        if not distro_branches:
            raise LlmhostError(f"nvidia_driver_source 'distribution': {os_id} ships no NVIDIA driver; use 'nvidia'")
        chosen = int(branch) if branch else max(distro_branches)
        if chosen not in distro_branches:
            raise LlmhostError(f"nvidia_driver_branch {chosen} is not packaged by {os_id}: expected one of "
                               f"{', '.join(map(str, sorted(distro_branches)))}")
    else:
        chosen = int(branch) if branch else rec.get("branch")
        if not chosen:
            raise LlmhostError(f"no driver branch fits {arch_name or 'this GPU'} on {os_id}")
    version = distro_branches.get(chosen, {}).get("version") if source == "distribution" else None
    candidate = parse_driver(upstream_driver(version) if version else f"{chosen}.999.99")
    if arch_name and verdict_of(gpu_driver(arch_name, candidate)) == "incompatible":
        raise LlmhostError(f"nvidia_driver_branch {chosen} cannot drive {arch_name} GPUs")
    for device in devices or []:
        bad = [r.message for r in device_driver(device, candidate) if r.level == "fail"]
        if bad:
            raise LlmhostError(f"nvidia_driver_branch {chosen} ({candidate}) cannot drive this host's GPU: {bad[0]}")
    flavour = rec["modules"] if modules == "auto" else modules
    if source == "distribution" and plat["family"] == "debian":
        # Debian's proprietary flavour is its default; open modules are a separate package.
        flavour = "proprietary" if modules == "auto" and "proprietary" in allowed else flavour
    packages = _driver_packages(plat, source == "distribution", flavour, chosen)
    info = knowledge.branch_info(chosen) or {}
    return {
        "os": plat["id"], "family": plat["family"], "branch": chosen, "modules": flavour, "source": source,
        "packages": packages, "persistenced_packages": plat["packages"].get("persistenced", []),
        "headers_packages": plat["packages"].get("headers", []),
        "repository": None if source == "distribution" else plat.get("nvidia_repo"),
        "version": distro_branches.get(chosen, {}).get("version") if source == "distribution" else None,
        "eol": info.get("eol"),
    }
