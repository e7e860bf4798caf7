"""Parsing and comparing NVIDIA driver, CUDA and kernel version strings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmhost.errors import LlmhostError

_DRIVER = re.compile(r"^(\d{3})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?$")
_CUDA = re.compile(r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{1,4}))?$")
_KERNEL = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class DriverVersion:
    branch: int
    minor: int = 0
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.branch}.{self.minor:02d}" + (f".{self.patch:02d}" if self.patch else "")


@dataclass(frozen=True, order=True)
class CudaVersion:
    major: int
    minor: int
    update: int = 0

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return self.short + (f" Update {self.update}" if self.update else "")


def parse_driver(text: str) -> DriverVersion:
    match = _DRIVER.match(str(text).strip())
    if not match:
        raise LlmhostError(f"driver version {text!r} is not valid: expected BRANCH[.MINOR[.PATCH]], e.g. 535.54.03")
    branch, minor, patch = match.groups()
    return DriverVersion(int(branch), int(minor or 0), int(patch or 0))


def upstream_driver(package_version: str) -> str:
    """A driver package's version -> NVIDIA's: '1:550.163.01-2' or '580.126.20-0ubuntu0.24.04.1' -> the
    part between the epoch and the distribution's revision."""
    return str(package_version).strip().split(":")[-1].split("-")[0]


def parse_cuda(text: str) -> CudaVersion:
    """'12.4', '12.4.1' (update 1) or an nvcc component version such as '12.4.131'.

    nvcc prints its own build number as the third field; a field of 10 or more is such a
    number and not an update, so it counts as the GA release.
    """
    match = _CUDA.match(str(text).strip().lstrip("vV"))
    if not match:
        raise LlmhostError(f"CUDA version {text!r} is not valid: expected MAJOR.MINOR[.UPDATE], e.g. 12.4")
    major, minor, third = match.groups()
    update = int(third) if third and int(third) < 10 else 0
    return CudaVersion(int(major), int(minor), update)


def parse_kernel(text: str) -> tuple[int, int, int]:
    match = _KERNEL.match(str(text).strip())
    if not match:
        raise LlmhostError(f"kernel version {text!r} is not valid: expected MAJOR.MINOR[.PATCH], e.g. 6.1.0-26-amd64")
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]
