"""Facts about one host, derived lazily from a Host (live or snapshot).

A fact that cannot be known raises Unavailable with the reason; the check that needed it reports
`skip` with that reason. Facts parse once and are shared by every check.
"""

from __future__ import annotations

import json
import re
import tempfile
from functools import cached_property
from typing import Any

import distro

from llmhost import knowledge
from llmhost.host import nvml
from llmhost.errors import LlmhostError
from llmhost.host.hostio import NOT_INSTALLED, Host
from llmhost.knowledge.versions import upstream_driver
from llmhost.host.parsers import ParseError, is_number, nvsmi, system, topo
from llmhost.host.parsers.pci import bar_sizes, gen_from_speed, normalize_address, parse_int, parse_lspci

PCI_DEVICES = "/sys/bus/pci/devices"
NVIDIA_VENDOR = "0x10de"
DRIVER_VERSION_FILE = "/proc/driver/nvidia/version"


class Unavailable(Exception):
    """This fact is not known on this host; the message says why."""


def _need(value, reason: str):
    if value is None:
        raise Unavailable(reason)
    return value


def _parse(parser, text, what: str):
    if text is None:
        raise Unavailable(f"{what} is not available")
    try:
        return parser(text)
    except ParseError as exc:
        raise Unavailable(f"{what} could not be read: {exc}") from None


_GEN_BY_GT = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}  # PCIe generation by transfer rate


class Facts:
    def __init__(self, host: Host, model_dir: str | None = None, model_bytes: int | None = None,
                 model_dir_fixed: bool = False):
        self.host = host
        self.model_dir = model_dir or knowledge.thresholds()["storage"]["default_model_dir"]
        self.model_bytes = model_bytes
        self.model_dir_fixed = model_dir_fixed  # judge model_dir only; do not propose another disk

    # --- files and commands ------------------------------------------------------------------

    def file(self, path: str) -> str:
        return _need(self.host.read(path), f"{path} is not readable")

    def command(self, name: str):
        """A command's result, or Unavailable when it was not run or is not installed."""
        result = self.host.run(name)
        if result is None:
            raise Unavailable(f"'{name}' was not captured")
        if result.not_installed:
            raise Unavailable(f"'{name}' is not installed")
        return result

    # --- PCI and GPUs ------------------------------------------------------------------------

    @cached_property
    def nvidia_pci_functions(self) -> list[tuple[str, str]]:
        """(address, PCI class) of every NVIDIA function in sysfs: GPUs, their audio, NVSwitch chips."""
        functions = []
        for address in self.host.listdir(PCI_DEVICES) or []:
            base = f"{PCI_DEVICES}/{address}"
            if (self.host.read(f"{base}/vendor") or "").strip().lower() == NVIDIA_VENDOR:
                functions.append((address, (self.host.read(f"{base}/class") or "").strip().lower()))
        return functions

    @cached_property
    def pci_gpus(self) -> list[dict[str, Any]]:
        """NVIDIA display/3D controllers found in sysfs, with what sysfs says of their links and BARs."""
        gpus = []
        for address, klass in self.nvidia_pci_functions:
            if not klass.startswith("0x03"):
                continue  # audio functions, NVSwitch bridges
            base = f"{PCI_DEVICES}/{address}"
            read = lambda attr: (self.host.read(f"{base}/{attr}") or "").strip() or None  # noqa: E731
            bars = bar_sizes(self.host.read(f"{base}/resource"))
            device = read("device")
            vendor, board = read("subsystem_vendor"), read("subsystem_device")
            subsystem = knowledge.subsystem_key(f"{vendor[2:]}:{board[2:]}") if vendor and board else None
            entry = knowledge.gpu_by_pci_id(device, subsystem) if device else None
            numa = parse_int(read("numa_node"))
            gpus.append({
                "address": normalize_address(address),
                "pci_device_id": device,
                "pci_subsystem_id": subsystem,
                "name": entry["name"] if entry else None,
                "architecture": entry["arch"] if entry else None,
                "vram_mib": entry["vram_gib"] * 1024 if entry and entry.get("vram_gib") else None,
                "link_width_current": parse_int(read("current_link_width")),
                "link_width_max": parse_int(read("max_link_width")),
                "link_gen_current": gen_from_speed(read("current_link_speed")),
                "link_gen_max": gen_from_speed(read("max_link_speed")),
                "numa_node": numa,
                "local_cpulist": read("local_cpulist"),
                "bar1_mib": bars[1] // (1 << 20) if len(bars) > 1 and bars[1] else None,
            })
        return gpus

    @cached_property
    def lspci_gpus(self) -> list[dict[str, Any]]:
        """NVIDIA display/3D controllers as `lspci -vvv` shows them: enough, alone, to know the GPUs,
        their architecture (the chip code), their links and BAR1 (what users paste into tickets)."""
        try:
            devices = self.lspci
        except Unavailable:
            return []
        gpus = []
        for address, device in devices.items():
            name = device.get("name", "")
            if "NVIDIA" not in name or not re.match(r"(VGA compatible|3D) controller( \[03[0-9a-f]{2}\])?:", name):
                continue
            product = re.search(r"\[([^\]]+)\]", name.split("NVIDIA Corporation", 1)[-1])
            bar1 = (device.get("regions") or {}).get(1)
            ids = device.get("ids", "")
            gpus.append({
                "address": address, "name": product.group(1) if product else None,
                "architecture": knowledge.arch_for_chip(name),
                "pci_device_id": ids.split(":")[1] if ids.startswith("10de:") else None,
                "pci_subsystem_id": device.get("subsystem"),
                "link_width_current": device.get("link_sta_width"), "link_width_max": device.get("link_cap_width"),
                "link_gen_current": _GEN_BY_GT.get(device.get("link_sta_gt")),
                "link_gen_max": _GEN_BY_GT.get(device.get("link_cap_gt")),
                "bar1_mib": bar1 // (1 << 20) if bar1 else None,
            })
        return gpus

    @cached_property
    def nvswitch_count(self) -> int:
        """NVSwitch chips on the PCI bus (NVIDIA bridges, class 0x0680), as HGX/DGX baseboards carry them:
        from sysfs, else from lspci ('Bridge: NVIDIA Corporation ...'); Unavailable when neither was read."""
        if self.host.knows(PCI_DEVICES):
            return sum(1 for _, klass in self.nvidia_pci_functions if klass.startswith("0x0680"))
        try:
            devices = self.lspci
        except Unavailable:
            raise Unavailable("neither sysfs nor lspci shows the PCI bus") from None
        return sum(1 for d in devices.values() if re.match(r"Bridge: NVIDIA", d.get("name", "")))

    @cached_property
    def smi(self) -> dict[str, Any] | None:
        """nvidia-smi -q -x parsed, None when nvidia-smi did not answer with XML."""
        result = self.host.run("nvidia-smi-q-x")
        if result is None or result.rc != 0:
            return None
        try:
            return nvsmi.parse(result.out)
        except ParseError:
            return None

    @cached_property
    def nvml(self) -> dict[str, Any] | None:
        result = self.host.run("nvml")
        if result is None or result.rc != 0:
            return None
        try:
            data = json.loads(result.out)
        except (ValueError, RecursionError):  # RecursionError: a hostile '[[[[...' of a snapshot
            return None
        return nvml.typed(data)

    @cached_property
    def gpus(self) -> list[dict[str, Any]]:
        """One record per GPU, keyed by PCI address: sysfs, lspci, then nvidia-smi, then NVML on top.
        Any one of them alone is enough to know a GPU is there."""
        merged: dict[str, dict[str, Any]] = {}
        for origin, source in (("sysfs", self.pci_gpus), ("lspci", self.lspci_gpus),
                               ("nvidia-smi", (self.smi or {}).get("gpus", [])),
                               ("nvml", (self.nvml or {}).get("gpus", []))):
            for gpu in source:
                if not isinstance(gpu, dict) or not gpu.get("address"):
                    continue
                record = merged.setdefault(gpu["address"], {"origin": {}})
                known = {k: v for k, v in gpu.items() if v is not None}
                record.update(known)
                record["origin"].update({k: origin for k in known})
        for record in merged.values():
            if not record.get("architecture") and record.get("name"):
                record["architecture"] = knowledge.arch_for_name(record["name"])
            entry = knowledge.gpu_by_pci_id(record["pci_device_id"], record.get("pci_subsystem_id")) \
                if record.get("pci_device_id") else None
            if entry:
                record.setdefault("product", entry["name"])
                record["device"] = entry  # what NVIDIA's lists say of it: device lists, module flavours
                if not record.get("architecture"):
                    record["architecture"] = entry["arch"]
            elif record.get("pci_device_id") and not record.get("product"):
                record["product"] = record.get("name")
        return [merged[a] for a in sorted(merged)]

    @cached_property
    def gpus_absent(self) -> bool:
        """True only when a source that would list a GPU was read and lists none (a readable sysfs PCI
        bus, lspci's output, nvidia-smi's XML or NVML); with none of them, the absence is unknown."""
        if self.gpus:
            return False
        if self.host.knows(PCI_DEVICES) and self.host.listdir(PCI_DEVICES) is not None:
            return True
        try:
            self.lspci
            return True
        except Unavailable:
            pass
        return self.smi is not None or self.nvml is not None

    def gpu_list(self) -> list[dict[str, Any]]:
        return _need(self.gpus or None, "no NVIDIA GPU found")

    @cached_property
    def gpu_placements(self) -> list[dict[str, Any]]:
        """Each GPU's NUMA node and local CPUs: sysfs, else nvidia-smi topo's affinity columns; on a
        single-node host node 0; None where neither the GPU's node nor the layout is known."""
        try:
            nodes = self.numa_nodes
        except Unavailable:
            nodes = None
        try:
            topo = dict(enumerate(self.topology))
        except Unavailable:
            topo = {}
        placements = []
        for index, gpu in enumerate(self.gpu_list()):
            node, cpus, origin = gpu.get("numa_node"), gpu.get("local_cpulist"), "sysfs"
            if node is not None and node < 0:  # sysfs says -1 when the firmware gives no locality
                node = None
            if node is None and index in topo:
                affinity = topo[index].get("numa_affinity", "")
                node = int(affinity) if is_number(affinity) else None
                cpus, origin = cpus or topo[index].get("cpu_affinity"), "nvidia-smi topo"
            if node is None and nodes is not None and len(nodes) == 1:
                node, origin = 0, "single NUMA node"
            placements.append({"address": gpu["address"], "numa_node": node, "cpus": cpus,
                               "origin": origin if node is not None else None, "numa_nodes": nodes})
        return placements

    # --- driver ------------------------------------------------------------------------------

    @cached_property
    def modules(self) -> set[str]:
        return _parse(system.loaded_modules, self.host.read("/proc/modules"), "/proc/modules")

    @cached_property
    def kernel_module(self) -> dict[str, Any] | None:
        """/proc/driver/nvidia/version: the loaded kernel module's version and flavour."""
        text = self.host.read(DRIVER_VERSION_FILE)
        if not text:
            return None
        match = re.search(r"Kernel Module(?: for \S+)?\s+(\d{3}(?:\.\d+){1,2})", text)
        return {"version": match.group(1) if match else None,
                "flavour": "open" if "Open Kernel Module" in text else "proprietary"}

    @cached_property
    def driver_state(self) -> dict[str, Any]:
        """{'state': loaded|not-installed|no-driver|version-mismatch|unknown, 'detail', 'version'}"""
        smi = self.host.run("nvidia-smi-q-x")
        nvml_result = self.host.run("nvml")
        version = (self.nvml or {}).get("driver_version") or (self.smi or {}).get("driver_version")
        if version:
            return {"state": "loaded", "detail": f"driver {version}", "version": version}
        said = " ".join(filter(None, [smi and smi.out[:400], smi and smi.err, nvml_result and nvml_result.err]))
        kind = nvsmi.classify_failure(said)
        if kind == "version-mismatch" or "version mismatch" in said.lower():
            module = (self.kernel_module or {}).get("version")
            return {"state": "version-mismatch", "version": module,
                    "detail": "Failed to initialize NVML: Driver/library version mismatch"
                              + (f" (kernel module {module})" if module else "")}
        module_loaded = self.kernel_module is not None or "nvidia" in self._modules_or_empty()
        if smi is None and not module_loaded and not (self.host.knows(DRIVER_VERSION_FILE)
                                                      and self.host.knows("/proc/modules")):
            return {"state": "not-captured", "version": None,
                    "detail": "neither nvidia-smi's output nor the loaded modules were captured"}
        if (smi is None or smi.not_installed) and not module_loaded:
            return {"state": "not-installed", "version": None, "detail": "no nvidia-smi and no nvidia kernel module"}
        if kind == "no-driver" or not module_loaded:
            return {"state": "no-driver", "version": None,
                    "detail": "nvidia-smi couldn't communicate with the NVIDIA driver"}
        return {"state": "unknown", "version": None, "detail": said.strip()[:160] or "nvidia-smi gave no answer"}

    def _modules_or_empty(self) -> set[str]:
        try:
            return self.modules
        except Unavailable:
            return set()

    @cached_property
    def driver_installed(self) -> dict[str, str] | None:
        """The driver version the packages installed ({version, package}), None when no driver package
        is installed; Unavailable when the package database was not read."""
        result = self.host.run("driver-packages")
        if result is None or result.rc == NOT_INSTALLED:
            raise Unavailable("the package database was not read")
        for line in result.out.splitlines():
            parts = line.split()
            if len(parts) == 3 and len(parts[0]) >= 2 and parts[0][1] == "i":  # dpkg: status, version, package
                version, package = parts[1], parts[2]
            elif len(parts) == 2 and "not installed" not in line:                # rpm: version, package
                version, package = parts
            else:
                continue
            try:
                return {"version": str(knowledge.parse_driver(upstream_driver(version))), "package": f"{package} {version}"}
            except LlmhostError:
                continue
        return None

    def driver_version(self):
        version = self.driver_state.get("version") or (self.kernel_module or {}).get("version")
        if not version:
            raise Unavailable(f"no driver version known ({self.driver_state['detail']})")
        return knowledge.parse_driver(version)

    @cached_property
    def kernel_release(self) -> str:
        result = self.host.run("uname-r")
        if result is not None and result.rc == 0 and result.out.strip():
            return result.out.strip()
        return _need((self.host.read("/proc/sys/kernel/osrelease") or "").strip() or None, "kernel release unknown")

    # --- system ------------------------------------------------------------------------------

    @cached_property
    def meminfo(self) -> dict[str, int]:
        return _parse(system.meminfo, self.host.read("/proc/meminfo"), "/proc/meminfo")

    @cached_property
    def cpuinfo(self) -> str:
        return self.file("/proc/cpuinfo")

    @cached_property
    def cpu_flags(self) -> set[str]:
        return _parse(system.cpu_flags, self.host.read("/proc/cpuinfo"), "/proc/cpuinfo")

    def sysctl(self, key: str) -> int:
        path = "/proc/sys/" + key.replace(".", "/")
        value = _need(self.host.read(path), f"{path} is not readable")
        try:
            return int(value.split()[0])
        except (ValueError, IndexError):
            raise Unavailable(f"{path} holds {value.strip()[:40]!r}, not a number") from None

    @cached_property
    def numa_nodes(self) -> list[int]:
        if not self.host.knows("/sys/devices/system/node"):
            raise Unavailable("the NUMA layout (/sys/devices/system/node) was not captured")
        names = self.host.listdir("/sys/devices/system/node") or []
        nodes = sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n))
        if not nodes:
            online = self.host.read("/sys/devices/system/node/online")
            nodes = _parse(system.cpulist, online, "/sys/devices/system/node/online") if online else []
        return nodes

    @cached_property
    def os_release(self) -> dict[str, str]:
        text = self.host.read("/etc/os-release") or self.host.read("/usr/lib/os-release")
        if not text:
            raise Unavailable("/etc/os-release is not readable")
        with tempfile.NamedTemporaryFile("w", suffix="-os-release") as handle:
            handle.write(text)
            handle.flush()
            parsed = distro.LinuxDistribution(include_lsb=False, include_uname=False, include_oslevel=False,
                                              os_release_file=handle.name, distro_release_file="/dev/null")
            try:
                return {"id": parsed.id(), "version_id": parsed.version(best=False),
                        "pretty_name": parsed.name(pretty=True), "id_like": parsed.like()}
            except ValueError as exc:  # distro's shlex parse of a malformed file, e.g. an unclosed quote
                raise Unavailable(f"/etc/os-release could not be read: {exc}") from None

    def os_key(self) -> str:
        rel = self.os_release
        if not rel["id"] or not rel["version_id"]:
            raise Unavailable("/etc/os-release names no ID and VERSION_ID")
        return knowledge.os_key(rel["id"], rel["version_id"])

    @cached_property
    def topology(self) -> list[dict[str, Any]]:
        result = self.command("nvidia-smi-topo-m")
        if result.rc != 0:
            raise Unavailable("nvidia-smi topo -m failed")
        return _parse(topo.parse, result.out, "nvidia-smi topo -m")

    @cached_property
    def lspci(self) -> dict[str, dict[str, Any]]:
        result = self.command("lspci-vvv")
        if result.rc != 0:
            raise Unavailable(f"lspci failed: {result.err.strip()[:80]}")
        return _parse(parse_lspci, result.out, "lspci -vvv")
