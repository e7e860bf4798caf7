"""Which local disk models should live on.

Preflight checks the model directory it is given; when that directory's disk is a spinning one or
has no room for the model, it names a better local disk, and the inference role stores models there
(unless told to keep the given directory). A disk that already holds llmhost's model directory wins
over an equal one, so the choice does not move once models are stored (they use up the free space
that ranked the disk first).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmhost.host.hostio import Host

# Faster is better; an unknown kind (LVM, RAID, a virtual disk) ranks between SSD and a spinning disk.
KIND_RANK = {"nvme": 3, "ssd": 2, None: 1, "rotational": 0}
FAST_KINDS = ("nvme", "ssd")
# Mounts that are not places for models, even on a real disk: the system's own, container engines'
# storage, and home directories (the inference service runs with ProtectHome, which hides them).
SYSTEM_MOUNTS = ("/boot", "/efi", "/snap", "/run", "/dev", "/proc", "/sys", "/var/lib/docker",
                 "/var/lib/containers", "/var/lib/containerd", "/home", "/root")
# Block devices that are not disks: loop images, compressed RAM.
NOT_DISKS = ("/dev/loop", "/dev/zram", "/dev/ram")
MODEL_SUBDIR = "llmhost/models"


@dataclass(frozen=True)
class Disk:
    device: str
    mount: str
    available: int
    kind: str | None

    def fits(self, need: int | None, margin: float) -> bool:
        return not need or self.available >= need * margin


def block_kind(host: Host, device: str) -> str | None:
    """'/dev/nvme0n1p2' -> 'nvme' | 'ssd' | 'rotational' from sysfs; None when sysfs does not say."""
    name = device.rsplit("/", 1)[-1]
    for candidate in (name, name.rstrip("0123456789"), name.rsplit("p", 1)[0]):
        rotational = host.read(f"/sys/block/{candidate}/queue/rotational")
        if rotational is not None:
            if candidate.startswith("nvme"):
                return "nvme"
            return "rotational" if rotational.strip() == "1" else "ssd"
    return None


def model_dir_on(mount: str, default_dir: str) -> str:
    """Where models go on a disk: the default directory on the root filesystem, else MOUNT/llmhost/models."""
    return default_dir if mount == "/" else f"{mount.rstrip('/')}/{MODEL_SUBDIR}"


def local_disks(host: Host, df_rows: list[dict], options: dict[str, set[str]]) -> list[Disk]:
    """Writable filesystems on real block devices, one per device (its shortest mount point)."""
    by_device: dict[str, Disk] = {}
    for row in df_rows:
        device, mount = row["device"], row["mount"]
        if not device.startswith("/dev/") or device.startswith(NOT_DISKS):
            continue
        if any(mount == m or mount.startswith(m + "/") for m in SYSTEM_MOUNTS):
            continue
        if "ro" in options.get(mount, set()):
            continue
        known = by_device.get(device)
        if known is None or len(mount) < len(known.mount):
            by_device[device] = Disk(device, mount, row["available"], block_kind(host, device))
    return sorted(by_device.values(), key=lambda d: d.mount)


def better_disk(current: Disk, disks: list[Disk], need: int | None, margin: float,
                holding_models: set[str]) -> Disk | None:
    """The disk models should go to instead of CURRENT's, or None when CURRENT is fit or none is better.

    CURRENT is unfit when the model does not fit (with MARGIN) or it spins. A replacement must fit;
    in place of a spinning disk it must be NVMe or SSD. Among replacements: one already holding
    llmhost's models (mount in HOLDING_MODELS), then the fastest kind, then the most free space.
    """
    current_fits = current.fits(need, margin)
    if current_fits and current.kind != "rotational":
        return None
    better = [d for d in disks
              if d.device != current.device and d.fits(need, margin) and (not current_fits or d.kind in FAST_KINDS)]
    if not better:
        return None
    return max(better, key=lambda d: (d.mount in holding_models, KIND_RANK[d.kind], d.available))
