"""What the cuda_toolkit role and the Fabric Manager step of nvidia_driver install, decided from the
knowledge base so the CLI, the roles and the tests agree.

Each function returns plain data (package names, paths, the alternative to select) or raises
LlmhostError with a one-line message naming the variable and what was expected.
"""

from __future__ import annotations

from typing import Any

from llmhost import knowledge
from llmhost.knowledge import compat
from llmhost.errors import LlmhostError
from llmhost.knowledge.versions import CudaVersion, DriverVersion, parse_cuda, parse_driver, upstream_driver

SOURCES = ("auto", "distribution", "nvidia")


def _toolkit(kind: str, cuda: CudaVersion, row: dict[str, Any]) -> dict[str, Any]:
    dash, short = f"{cuda.major}-{cuda.minor}", cuda.short
    packages = [p.format(cuda_dash=dash, cuda_short=short) for p in row["packages"]]
    if kind == "distribution":
        # The OS's toolkit lives in /usr (nvcc on PATH); there is no versioned prefix to switch between.
        return {"version": short, "packages": packages, "home": "/usr", "nvcc": row["nvcc"],
                "host_compiler": row.get("host_compiler")}
    home = f"/usr/local/cuda-{short}"
    # NVIDIA's toolkits accept the OS's own g++ (their supported-compiler table tracks the OS).
    return {"version": short, "packages": packages, "home": home, "nvcc": f"{home}/bin/nvcc", "host_compiler": None}


def _check_runs(cuda: CudaVersion, driver: DriverVersion, arch: str | None, allow_minor: bool) -> str:
    """'ok' or 'minor' when this driver (and GPU architecture) can run code built by this toolkit."""
    reasons = compat.driver_cuda(driver, cuda) + (compat.gpu_cuda(arch, cuda) if arch else [])
    bad = [r.message for r in reasons if r.level == "fail"]
    minor = [r.message for r in reasons if r.minor]
    if bad:
        raise LlmhostError(f"cuda_toolkit_versions {cuda.short}: {bad[0]}")
    if minor and not allow_minor:
        raise LlmhostError(f"cuda_toolkit_versions {cuda.short}: {minor[0]}; set cuda_toolkit_allow_minor_compat "
                           "to install it anyway")
    return "minor" if minor else "ok"


def cuda_toolkit_plan(os_id: str, driver: str, driver_source: str = "distribution", versions: list[str] | None = None,
                      source: str = "auto", default: str = "", arch: str | None = None,
                      allow_minor: bool = False) -> dict[str, Any]:
    """The toolkit(s) for this OS and driver.

    driver: the driver version the host runs or is getting ('550.163.01', or its package's
    '550.163.01-2'); driver_source: where
    nvidia_driver took it from; versions: wanted MAJOR.MINOR toolkits (empty: the newest this driver
    fully supports, or the OS's own when the driver is the OS's); default: the one /usr/local/cuda
    points to (empty: the newest).
    """
    if source not in SOURCES:
        raise LlmhostError(f"cuda_toolkit_source {source!r} is not valid: expected {', '.join(SOURCES)}")
    plat = knowledge.platform(os_id)
    rows = plat.get("cuda_toolkit", {})
    try:
        wanted = [parse_cuda(str(v)) for v in versions or []]
        for cuda in wanted:
            knowledge.cuda_min_driver(cuda)  # raises for a toolkit the table does not know
    except LlmhostError as exc:
        raise LlmhostError(f"cuda_toolkit_versions {versions}: {exc}") from None
    try:
        installed = parse_driver(upstream_driver(driver))
    except LlmhostError as exc:
        raise LlmhostError(f"cuda_toolkit: the driver version is needed to choose a toolkit: {exc}") from None
    distro = rows.get("distribution")
    if source == "auto":
        # The OS's toolkit goes with the OS's driver (the same archive, mirrored the same way).
        same = distro and all(c.short == distro["version"] for c in wanted)
        source = "distribution" if distro and driver_source == "distribution" and same else "nvidia"
    if source == "distribution":
        if not distro:
            raise LlmhostError(f"cuda_toolkit_source 'distribution': {plat['id']} packages no CUDA toolkit; use 'nvidia'")
        other = [c.short for c in wanted if c.short != distro["version"]]
        if other:
            raise LlmhostError(f"cuda_toolkit_versions {', '.join(other)}: {plat['id']} packages only CUDA "
                               f"{distro['version']}; set cuda_toolkit_source to 'nvidia' for other versions")
        wanted = [parse_cuda(distro["version"])]
    elif not wanted:
        max_major = knowledge.architecture(arch).get("last_cuda_major") if arch else None
        newest = knowledge.newest_cuda_for_driver(installed, max_major=max_major)
        if not newest:
            raise LlmhostError(f"driver {driver} runs no CUDA toolkit in llmhost's table")
        wanted = [parse_cuda(newest.short)]
    row = distro if source == "distribution" else rows["nvidia"]
    toolkits = []
    for cuda in sorted(set(wanted)):
        toolkit = _toolkit(source, cuda, row)
        toolkit["runs_on_driver"] = _check_runs(cuda, installed, arch, allow_minor)
        toolkits.append(toolkit)
    names = [t["version"] for t in toolkits]
    chosen = str(default) if default else names[-1]
    if chosen not in names:
        raise LlmhostError(f"cuda_toolkit_default {chosen!r} is not one of the installed toolkits: expected one of "
                           f"{', '.join(names)}")
    default_toolkit = next(t for t in toolkits if t["version"] == chosen)
    side_by_side = source == "nvidia"
    return {
        "os": plat["id"], "family": plat["family"], "driver": str(installed), "source": source, "toolkits": toolkits,
        "default": chosen,
        "packages": [p for t in toolkits for p in t["packages"]],
        "repository": plat.get("nvidia_repo") if source == "nvidia" else None,
        # NVIDIA's packages register /usr/local/cuda as the 'cuda' alternative, one entry per version.
        "alternative": {"name": "cuda", "link": "/usr/local/cuda", "path": default_toolkit["home"]}
        if side_by_side else None,
        "bin_dir": "/usr/local/cuda/bin" if side_by_side else None,
        "nvcc": default_toolkit["nvcc"], "host_compiler": default_toolkit["host_compiler"],
    }


def fabricmanager_plan(os_id: str, driver_source: str, branch: int | str, driver_version: str | None,
                       nvswitches: int) -> dict[str, Any]:
    """Fabric Manager for NVSwitch systems, pinned to the driver's own version (a mismatch keeps FM
    from starting and CUDA reports 'system not yet initialized')."""
    if int(nvswitches) <= 0:
        return {"needed": False, "packages": [], "names": []}
    plat = knowledge.platform(os_id)
    source = "distribution" if driver_source == "distribution" else "nvidia"
    row = plat.get("fabricmanager", {}).get(source)
    if not row:
        raise LlmhostError(f"{plat['id']} has {nvswitches} NVSwitch device(s) but its own archive packages no Fabric "
                           "Manager: install the driver from NVIDIA's repository (nvidia_driver_source=nvidia)")
    names = [p.format(branch=branch) for p in row["packages"]]
    if not driver_version:
        # Before the driver is installed (check mode on a new host) its exact version is unknown.
        return {"needed": True, "version": None, "names": names, "packages": [], "service": "nvidia-fabricmanager"}
    upstream = upstream_driver(driver_version)
    parse_driver(upstream)
    pin = "={v}*" if plat["family"] in ("debian", "ubuntu") else "-{v}"
    return {"needed": True, "version": upstream, "names": names,
            "packages": [n + pin.format(v=upstream) for n in names], "service": "nvidia-fabricmanager"}
