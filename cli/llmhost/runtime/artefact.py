"""Build llama.cpp's own `llama-server` (and `llama-bench`) once per build kind, from a pinned source,
into an artefact that hosts unpack and run without a compiler or a package index.

    llmhost runtime build [--backend cpu|cuda] [--source URL|TARBALL|DIR --sha256 HEX] [--cache DIR]

The artefact is `llama.cpp-<id>.tar.gz` in the cache, with `manifest.json` inside and beside it. The
id hashes the source's digest and everything that shapes the binaries (backend, CMake options, CPU
variants, CUDA architectures and toolkit), so a cached artefact is reused only for the same build.
Layout inside: bin/ (binaries, their libraries, the portable CPU backend), variants/ (faster CPU
backends, enabled one at a time on a host only after a real decode proved it: see serve.prove).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import distro

from llmhost import knowledge
from llmhost.errors import LlmhostError

SCHEMA = "llmhost.llama-artefact/1"
BACKENDS = ("cpu", "cuda")
BUILDS = ("auto", "cpu", "cuda")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ARCH = re.compile(r"^[0-9]{2,3}(-real|-virtual)?$")


def data() -> dict[str, Any]:
    return knowledge.load("runtimes")["llama_cpp"]


@dataclass
class BuildSpec:
    """What shapes the binaries. Everything here goes into the artefact id."""
    backend: str = "cpu"
    cpu_variants: list[str] = field(default_factory=list)
    cuda_archs: list[str] = field(default_factory=list)
    nvcc: str = ""
    host_cxx: str = ""

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise LlmhostError(f"backend {self.backend!r} is not valid: expected {' or '.join(BACKENDS)}")
        known = data()["cpu_variants"]
        for variant in self.cpu_variants:
            if variant not in known:
                raise LlmhostError(f"CPU variant {variant!r} is not known: expected some of {', '.join(known)}")
        if self.backend == "cuda":
            if not self.cuda_archs or not all(_ARCH.match(a) for a in self.cuda_archs):
                raise LlmhostError(f"CUDA architectures {';'.join(self.cuda_archs)!r} are not valid: expected "
                                   "CMake's list, e.g. '90' or '89;90'")
            if not self.nvcc:
                raise LlmhostError("a CUDA build needs nvcc: run the cuda_toolkit role, or give --nvcc PATH")

    def cmake_main(self) -> list[str]:
        args = list(data()["cmake"]) + [f"-DGGML_{feat}=ON" for feat in data()["cpu_base"]]
        if self.backend == "cuda":
            args += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(self.cuda_archs)}",
                     f"-DCMAKE_CUDA_COMPILER={self.nvcc}"]
            if self.host_cxx:
                args.append(f"-DCMAKE_CUDA_HOST_COMPILER={self.host_cxx}")  # nvcc's -ccbin
        return args

    def cmake_variants(self) -> list[str]:
        # ggml's own variant list builds each backend with its feature set; only the chosen ones are built.
        return list(data()["cmake"]) + ["-DGGML_CPU_ALL_VARIANTS=ON", "-DLLAMA_BUILD_SERVER=OFF",
                                        "-DLLAMA_BUILD_TOOLS=OFF"]

    def describe(self, cuda_version: str = "") -> dict[str, Any]:
        return {"backend": self.backend, "cmake": self.cmake_main(), "cpu_base": data()["cpu_base"],
                "cpu_variants": sorted(self.cpu_variants), "cuda_archs": self.cuda_archs,
                "cuda_version": cuda_version, "host_cxx": self.host_cxx}


def decide(build: str, gpu_count: int, compute_caps: list[str], arch: str | None = None,
           cuda: dict[str, Any] | None = None, architectures: str = "",
           cpu_variants: list[str] | None = None) -> BuildSpec:
    """What the inference role builds for a host.

    build: inference_llama_build (auto: CUDA where there is an NVIDIA GPU, CPU elsewhere);
    compute_caps: nvidia-smi's compute_cap column ('9.0'), empty before the driver is loaded;
    arch: the GPUs' architecture from their PCI ids (its compute capabilities are the fallback);
    cuda: the cuda_toolkit role's local fact ({'nvcc': ..., 'default': '12.4', 'host_compiler': ...});
    architectures: inference_cuda_architectures, CMake's list (e.g. '90;89'), overriding the rest.
    """
    if build not in BUILDS:
        raise LlmhostError(f"inference_llama_build {build!r} is not valid: expected {', '.join(BUILDS)}")
    variants = data()["cpu_variants_default"] if cpu_variants is None else list(cpu_variants)
    kind = build if build != "auto" else ("cuda" if gpu_count > 0 else "cpu")
    if kind == "cpu":
        return BuildSpec("cpu", variants)
    if not cuda or not cuda.get("nvcc"):
        raise LlmhostError(f"inference_llama_build {build}: the host has {gpu_count} NVIDIA GPU(s) but no CUDA "
                           "toolkit (ansible_local.llmhost_cuda): run the cuda_toolkit role first, or set "
                           "inference_llama_build=cpu to serve from the CPU")
    if architectures:
        archs = architectures.split(";")
        if not all(_ARCH.match(a) for a in archs):
            raise LlmhostError(f"inference_cuda_architectures {architectures!r} is not valid: expected CMake's list, "
                               "e.g. '90' or '89;90'")
    else:
        caps = [c.strip() for c in compute_caps if c.strip()] or (
            knowledge.architecture(arch)["compute_capability"] if arch else [])
        if not caps:
            raise LlmhostError("inference_llama_build cuda: no GPU to read compute capabilities from: set "
                               "inference_cuda_architectures (e.g. '90')")
        archs = sorted({c.replace(".", "") for c in caps}, key=int)
    return BuildSpec("cuda", variants, archs, cuda["nvcc"], cuda.get("host_compiler") or "")


# --- the source -------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_digest(root: Path) -> str:
    """A source directory's content digest (paths and bytes), build folders and .git left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if rel.parts[0] in (".git", "build") or rel.parts[0].startswith("build-"):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + _sha256_file(path).encode())
    return digest.hexdigest()


def resolve_source(source: str, sha256: str, cache: Path) -> tuple[Path, dict[str, Any]]:
    """A URL, a tarball or a source directory -> (local path, its record for the manifest)."""
    if not source:
        raise LlmhostError("the llama.cpp source is empty: expected a URL, a .tar.gz path or a source directory")
    if source.startswith(("http://", "https://")):
        if not _HEX64.match(sha256 or ""):
            raise LlmhostError(f"the llama.cpp source {source} needs its sha256 (64 hex digits), got {sha256!r}")
        target = cache / "sources" / f"{sha256[:16]}-{Path(source.split('?')[0]).name or 'source.tar.gz'}"
        if not (target.is_file() and _sha256_file(target) == sha256):
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_suffix(".part")
            try:
                with urllib.request.urlopen(source, timeout=60) as response, part.open("wb") as out:  # noqa: S310
                    shutil.copyfileobj(response, out, 1 << 20)
            except (OSError, ValueError) as exc:
                part.unlink(missing_ok=True)
                raise LlmhostError(f"the llama.cpp source {source} could not be downloaded: {exc}") from None
            got = _sha256_file(part)
            if got != sha256:
                part.unlink()
                raise LlmhostError(f"the llama.cpp source {source} has sha256 {got}, expected {sha256}")
            part.replace(target)
        return target, {"url": source, "sha256": sha256}
    path = Path(source)
    if path.is_dir():
        return path, {"path": str(path), "tree_sha256": _tree_digest(path)}
    if not path.is_file():
        raise LlmhostError(f"the llama.cpp source {source!r} is neither a URL, a file nor a directory")
    got = _sha256_file(path)
    if not _HEX64.match(sha256 or "") or got != sha256:
        raise LlmhostError(f"the llama.cpp source {source} has sha256 {got}, expected {sha256 or 'its sha256'}")
    return path, {"path": str(path), "sha256": got}


def find_tree(root: Path) -> Path:
    """The directory holding llama.cpp's top CMakeLists.txt: the root, a tarball's top folder, or the
    sdist's vendor/llama.cpp."""
    for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        for tree in (candidate, candidate / "vendor" / "llama.cpp"):
            if (tree / "CMakeLists.txt").is_file() and (tree / "tools" / "server").is_dir() and (tree / "ggml").is_dir():
                return tree
    raise LlmhostError(f"no llama.cpp source tree (CMakeLists.txt, ggml/, tools/server/) under {root}")


def _extract(tarball: Path, into: Path) -> None:
    try:
        with tarfile.open(tarball) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(into, filter="data")
            else:  # Pythons before the extraction filters: refuse what would land outside
                for member in archive.getmembers():
                    if member.name.startswith("/") or ".." in Path(member.name).parts or member.issym() \
                            or member.islnk() or member.isdev():
                        raise LlmhostError(f"the llama.cpp source {tarball} holds an unsafe entry {member.name!r}")
                archive.extractall(into)
    except (tarfile.TarError, OSError) as exc:
        raise LlmhostError(f"the llama.cpp source {tarball} is not a readable tarball: {exc}") from None


# --- what the binaries need -------------------------------------------------------------------

_NEEDED = re.compile(r"^\s*NEEDED\s+(\S+)", re.M)
_VERSION_REF = re.compile(r"\b(GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\b")


def needs_from_objdump(texts: list[str], shipped: set[str]) -> dict[str, Any]:
    """`objdump -p` of each ELF file -> the libraries the host must provide and the newest symbol
    versions they must have (glibc, libstdc++)."""
    libs: set[str] = set()
    newest: dict[str, tuple[int, ...]] = {}
    for text in texts:
        libs.update(name for name in _NEEDED.findall(text) if name not in shipped)
        for lib, version in _VERSION_REF.findall(text):
            parsed = tuple(int(x) for x in version.split(".") if x.isdigit())
            newest[lib] = max(newest.get(lib, ()), parsed)
    return {"libraries": sorted(libs), **{lib.lower(): ".".join(map(str, v)) for lib, v in sorted(newest.items())}}


def _elf_needs(files: list[Path], shipped: set[str]) -> dict[str, Any]:
    texts = []
    for path in files:
        out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=False)
        texts.append(out.stdout)
    return needs_from_objdump(texts, shipped)


# --- the build --------------------------------------------------------------------------------

def artefact_id(source_record: dict[str, Any], description: dict[str, Any]) -> str:
    digest = source_record.get("sha256") or source_record.get("tree_sha256")
    blob = json.dumps({"source": digest, "build": description, "schema": SCHEMA}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run(cmd: list[str], log: Callable[[str], None], cwd: Path | None = None, env: dict | None = None) -> str:
    log("+ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise LlmhostError(f"{cmd[0]} failed (exit {proc.returncode}): " + " | ".join(tail))
    return proc.stdout


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise LlmhostError(f"building llama.cpp needs {name}, which is not on PATH (Debian: apt-get install cmake g++ "
                           "binutils)")
    return found


def _cuda_version(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False, timeout=60).stdout
    except OSError as exc:
        raise LlmhostError(f"nvcc {nvcc!r} does not run: {exc}") from None
    match = re.search(r"release (\d+\.\d+)", out)
    if not match:
        raise LlmhostError(f"nvcc {nvcc!r} printed no CUDA release: {out.strip()[:120]!r}")
    return match.group(1)


def _deterministic_tar(stage: Path, target: Path, top: str) -> None:
    """Sorted entries, fixed times and owners: the same staged files give the same bytes."""
    part = target.with_suffix(".part")
    with part.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w") as archive:
        for path in sorted(stage.rglob("*")):
            info = archive.gettarinfo(str(path), f"{top}/{path.relative_to(stage).as_posix()}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            if not path.is_symlink():
                info.mode = 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644
            if info.isfile():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    part.replace(target)


def build(spec: BuildSpec, source: str, sha256: str, cache: Path, jobs: int | None = None,
          log: Callable[[str], None] = lambda _: None) -> tuple[Path, dict[str, Any]]:
    """Build (or find in the cache) the artefact for this spec and source -> (tarball, manifest).
    One build at a time per cache: hosts converged in parallel wait for the first and reuse it."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = (cache / ".build.lock").open("w")
    except OSError as exc:
        raise LlmhostError(f"the artefact cache {cache} is not writable: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(spec, source, sha256, cache, jobs, log)


def _build_locked(spec: BuildSpec, source: str, sha256: str, cache: Path, jobs: int | None,
                  log: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    cuda_version = _cuda_version(spec.nvcc) if spec.backend == "cuda" else ""
    src_path, src_record = resolve_source(source, sha256, cache)
    description = spec.describe(cuda_version)
    ident = artefact_id(src_record, description)
    tarball, manifest_path = cache / f"llama.cpp-{ident}.tar.gz", cache / f"llama.cpp-{ident}.json"
    if tarball.is_file() and manifest_path.is_file():
        log(f"cached: {tarball}")
        return tarball, json.loads(manifest_path.read_text())
    cmake = _tool("cmake")
    _tool("objdump")
    jobs = jobs or os.cpu_count() or 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmhost-llama-", dir=cache) as tmp_name:
        tmp = Path(tmp_name)
        if src_path.is_dir():
            tree = find_tree(src_path)
        else:
            _extract(src_path, tmp / "src")
            tree = find_tree(tmp / "src")
        main, stage = tmp / "build-main", tmp / "stage"
        _run([cmake, "-S", str(tree), "-B", str(main), *spec.cmake_main()], log)
        _run([cmake, "--build", str(main), "-j", str(jobs), "--target", *data()["targets"]], log)
        (stage / "bin").mkdir(parents=True)
        (stage / "variants").mkdir()
        for path in sorted((main / "bin").iterdir()):
            if path.name in data()["targets"] or ".so" in path.name:
                if path.is_symlink():  # libX.so.0 -> libX.so.0.25.3: one copy of each library
                    os.symlink(os.readlink(path), stage / "bin" / path.name)
                elif path.is_file():
                    shutil.copy2(path, stage / "bin" / path.name)
        if spec.cpu_variants:
            variants = tmp / "build-variants"
            _run([cmake, "-S", str(tree), "-B", str(variants), *spec.cmake_variants()], log)
            _run([cmake, "--build", str(variants), "-j", str(jobs), "--target",
                  *[f"ggml-cpu-{v}" for v in sorted(spec.cpu_variants)]], log)
            for variant in sorted(spec.cpu_variants):
                built = variants / "bin" / f"libggml-cpu-{variant}.so"
                if not built.is_file():
                    raise LlmhostError(f"the build made no {built.name}: this llama.cpp has no '{variant}' variant")
                shutil.copy2(built, stage / "variants" / built.name)
        license_file = tree / "LICENSE"
        if license_file.is_file():
            shutil.copy2(license_file, stage / "LICENSE")
        server = stage / "bin" / "llama-server"
        version = subprocess.run([str(server), "--version"], capture_output=True, text=True, check=False, timeout=60)
        version_text = (version.stdout + version.stderr).strip()
        commit = re.search(r"commit ([0-9a-f]{7,40})\b|\(([0-9a-f]{7,40})\)", version_text)
        elves = [p for p in sorted((stage / "bin").iterdir()) + sorted((stage / "variants").iterdir())
                 if not p.is_symlink()]
        manifest = {
            "schema": SCHEMA, "id": ident, "source": {**src_record, "llama_cpp_commit": (commit.group(1) or commit.group(2)) if commit else None},
            "build": description, "version": version_text.splitlines()[:2],
            "needs": _elf_needs(elves, {p.name for p in (stage / "bin").iterdir()}),
            "built_on": {"machine": platform.machine(), "os": f"{distro.id()}-{distro.version()}", "seconds": round(time.monotonic() - started)},
            "files": {p.relative_to(stage).as_posix(): _sha256_file(p) for p in sorted(stage.rglob("*"))
                      if p.is_file() and not p.is_symlink()},
        }
        manifest_text = json.dumps(manifest, indent=2) + "\n"
        (stage / "manifest.json").write_text(manifest_text)
        _deterministic_tar(stage, tarball, f"llama.cpp-{ident}")
        manifest_path.write_text(manifest_text)
    log(f"built: {tarball} in {manifest['built_on']['seconds']} s")
    return tarball, manifest
