"""storage.*, container.*, os.*: the model disk, the container runtime, the OS release and its updates."""

from __future__ import annotations

import json

from llmhost import knowledge
from llmhost.host import storage
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.parsers import ParseError, system

GIB = 1 << 30


def _other_disks(facts: Facts) -> list[storage.Disk]:
    """The host's local disks (empty when df cannot list them: the check then judges the given directory only)."""
    try:
        rows = system.df_table(facts.command("df-local").out)
    except (Unavailable, ParseError):
        return []
    return storage.local_disks(facts.host, rows, system.mount_options(facts.host.read("/proc/mounts") or ""))


def _describe(disk: storage.Disk) -> str:
    return f"{disk.device} ({disk.kind or 'unknown type'}, {disk.available / GIB:.1f} GiB free)"


@check("storage.model_disk", "The model directory is on fast storage with room for the model")
def model_disk(facts: Facts):
    result = facts.command("df-model-dir")
    try:
        df = system.df_bytes(result.out)
    except ParseError as exc:
        yield skipped(f"df: {exc}")
        return
    current = storage.Disk(df["device"], df["mount"], df["available"], storage.block_kind(facts.host, df["device"]))
    need = facts.model_bytes
    limits = knowledge.thresholds()["storage"]
    margin, default_dir = limits["free_space_margin"], limits["default_model_dir"]
    better = None
    if not facts.model_dir_fixed:
        disks = _other_disks(facts)
        holding = {d.mount for d in disks
                   if facts.host.listdir(storage.model_dir_on(d.mount, default_dir)) is not None}
        better = storage.better_disk(current, disks, need, margin, holding)
    chosen = storage.model_dir_on(better.mount, default_dir) if better else facts.model_dir
    data = {"device": current.device, "mount": current.mount, "available": current.available, "kind": current.kind,
            "model_dir": chosen}
    where = f"{facts.model_dir} on {_describe(current)}"
    fits = current.fits(need, margin)
    problem = (f"the model needs {need / GIB:.1f} GiB" if not fits
               else "a spinning disk loads a 40 GB model in minutes")
    if better:
        yield warned(f"{where}: {problem}; models go to {chosen} on {_describe(better)}",
                     f"nothing to do for llmhost's roles (they follow this choice); to keep {facts.model_dir}, "
                     "set preflight_model_dir_fixed (--fixed-model-dir) and "
                     + ("free space" if not fits else "accept slower loads"), **data)
    elif not fits:
        yield failed(f"{where}: {problem}", "free space, or point preflight_model_dir (--model-dir) at a larger disk",
                     **data)
    elif current.kind == "rotational":
        yield warned(f"{where}: {problem}", "put models on NVMe or SSD", **data)
    else:
        yield passed(where, **data)


@check("container.runtime", "The NVIDIA container toolkit is installed and configured")
def container_runtime(facts: Facts):
    daemon = facts.host.read("/etc/docker/daemon.json")
    containerd = facts.host.read("/etc/containerd/config.toml")
    cdi = [f for d in ("/etc/cdi", "/var/run/cdi") for f in (facts.host.listdir(d) or []) if "nvidia" in f]
    engines = [n for n, present in (("docker", daemon is not None or facts.host.listdir("/etc/docker") is not None),
                                    ("containerd", containerd is not None),
                                    ("podman", facts.host.listdir("/etc/containers") is not None)) if present]
    if not engines:
        yield skipped("no container engine configured")
        return
    try:
        ctk = facts.command("nvidia-ctk-version")
    except Unavailable:
        if facts.gpus:
            yield warned(f"{', '.join(engines)} present but the NVIDIA container toolkit is not installed",
                         "install it (role container_toolkit) to run GPU containers")
        else:
            yield skipped("no GPU: the NVIDIA container toolkit is not needed")
        return
    configured = []
    if daemon:
        try:
            if "nvidia" in (json.loads(daemon).get("runtimes") or {}):
                configured.append("docker")
        except (ValueError, AttributeError):
            yield failed("/etc/docker/daemon.json is not valid JSON", "fix the file; docker will not start with it")
            return
    if containerd and "nvidia" in containerd:
        configured.append("containerd")
    if cdi:
        configured.append("CDI")
    version = ctk.out.strip().splitlines()[0] if ctk.out.strip() else "nvidia-ctk"
    if configured:
        yield passed(f"{version}; nvidia runtime in {', '.join(configured)}", configured=configured)
    else:
        yield warned(f"{version} installed but no engine has the nvidia runtime and no CDI spec exists",
                     "run 'nvidia-ctk runtime configure' and 'nvidia-ctk cdi generate' (role container_toolkit)")


@check("os.supported", "The OS release is one llmhost supports")
def os_supported(facts: Facts):
    key = facts.os_key()
    pretty = facts.os_release.get("pretty_name") or key
    supported = knowledge.thresholds()["os"]["supported"]
    if key in supported:
        yield passed(f"{pretty} ({key})", os=key)
    else:
        yield warned(f"{pretty} ({key}) is not among {', '.join(supported)}",
                     "llmhost may still work; driver packages and repositories are only known for the listed releases",
                     os=key)


@check("os.unattended_upgrades", "Unattended upgrades will not swap the driver or kernel under a running model")
def unattended(facts: Facts):
    files = facts.host.listdir("/etc/apt/apt.conf.d")
    if files is None:
        yield skipped("not an apt-based system")
        return
    text = "\n".join(facts.host.read(f"/etc/apt/apt.conf.d/{f}") or "" for f in files)
    periodic = system.apt_periodic(text)
    if periodic.get("APT::Periodic::Unattended-Upgrade", "0") in ("0", ""):
        yield passed("unattended upgrades off")
        return
    blacklist = "nvidia" in text and ("Package-Blacklist" in text or "Package-Denylist" in text)
    if blacklist:
        yield passed("unattended upgrades on, nvidia packages excluded")
    else:
        yield warned("unattended upgrades on and may upgrade the driver or kernel: 'Driver/library version "
                     "mismatch' until reboot", "exclude nvidia and linux-image packages in "
                     "Unattended-Upgrade::Package-Blacklist, or hold them (role nvidia_driver holds them)")
