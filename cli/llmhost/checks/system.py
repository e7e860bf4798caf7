"""storage.*, container.*, os.*: the model disk, the container runtime, the OS release and its updates."""

from __future__ import annotations

import json

from llmhost import knowledge
from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.facts import Facts, Unavailable
from llmhost.parsers import ParseError, system

GIB = 1 << 30


def _block_kind(facts: Facts, device: str) -> str | None:
    """'/dev/nvme0n1p2' -> 'nvme' | 'ssd' | 'rotational' from sysfs."""
    name = device.rsplit("/", 1)[-1]
    candidates = [name]
    for strip in (lambda n: n.rstrip("0123456789"), lambda n: n.rsplit("p", 1)[0]):
        candidates.append(strip(name))
    for candidate in candidates:
        rotational = facts.host.read(f"/sys/block/{candidate}/queue/rotational")
        if rotational is not None:
            if candidate.startswith("nvme"):
                return "nvme"
            return "rotational" if rotational.strip() == "1" else "ssd"
    return None


@check("storage.model_disk", "The model directory is on fast storage with room for the model")
def model_disk(facts: Facts):
    result = facts.command("df-model-dir")
    try:
        df = system.df_bytes(result.out)
    except ParseError as exc:
        yield skipped(f"df: {exc}")
        return
    kind = _block_kind(facts, df["device"])
    data = {"device": df["device"], "mount": df["mount"], "available": df["available"], "kind": kind}
    need = facts.model_bytes
    margin = knowledge.thresholds()["storage"]["free_space_margin"]
    where = f"{facts.model_dir} on {df['device']} ({kind or 'unknown type'}), {df['available'] / GIB:.1f} GiB free"
    if need and df["available"] < need * margin:
        yield failed(f"{where}: the model needs {need / GIB:.1f} GiB", "free space or point llmhost_model_dir "
                     "at a larger disk", **data)
    elif kind == "rotational":
        yield warned(f"{where}: a spinning disk loads a 40 GB model in minutes", "put models on NVMe or SSD", **data)
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
