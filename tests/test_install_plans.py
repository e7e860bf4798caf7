"""What cuda_toolkit and nvidia_driver's Fabric Manager step install. Debian's own toolkit is converged
in Molecule; NVIDIA's repository (side-by-side toolkits, the 'cuda' alternative), Ubuntu and RHEL
cannot be reached here, so their decisions are tested from the rendered plans."""

from __future__ import annotations

import pytest

from llmhost.errors import LlmhostError
from llmhost.knowledge.install_plans import cuda_toolkit_plan, fabricmanager_plan

BOOKWORM_DRIVER = "535.261.03"
TRIXIE_DRIVER = "550.163.01"


@pytest.mark.parametrize("os_id,driver,version,gxx", [("debian-12", BOOKWORM_DRIVER, "11.8", "g++-11"),
                                                       ("debian-13", TRIXIE_DRIVER, "12.4", "g++-13")])
def test_debian_driver_gets_debian_toolkit(os_id, driver, version, gxx):
    plan = cuda_toolkit_plan(os_id, driver)
    # nvcc must be told its g++: the default gcc that DKMS pulls in has no C++ front end.
    assert plan["host_compiler"] == gxx
    assert plan["source"] == "distribution"
    assert plan["packages"] == ["nvidia-cuda-toolkit"]
    assert plan["default"] == version and plan["nvcc"] == "/usr/bin/nvcc"
    # One version in /usr: nothing to switch between, nothing to add to PATH.
    assert plan["alternative"] is None and plan["bin_dir"] is None and plan["repository"] is None


@pytest.mark.parametrize("package_version", ["550.163.01-2", "1:550.163.01-2", "550.163.01"])
def test_driver_package_versions_are_read_as_nvidia_versions(package_version):
    plan = cuda_toolkit_plan("debian-13", package_version)
    assert plan["driver"] == TRIXIE_DRIVER and plan["default"] == "12.4"


def test_nvidia_repository_installs_side_by_side_and_selects_the_default():
    plan = cuda_toolkit_plan("ubuntu-24.04", "580.95.05", driver_source="nvidia", versions=["13.0", "12.8"],
                             default="12.8")
    assert plan["packages"] == ["cuda-toolkit-12-8", "cuda-toolkit-13-0"]
    assert [t["home"] for t in plan["toolkits"]] == ["/usr/local/cuda-12.8", "/usr/local/cuda-13.0"]
    assert plan["alternative"] == {"name": "cuda", "link": "/usr/local/cuda", "path": "/usr/local/cuda-12.8"}
    assert plan["nvcc"] == "/usr/local/cuda-12.8/bin/nvcc" and plan["bin_dir"] == "/usr/local/cuda/bin"
    assert plan["repository"].endswith("/repos/ubuntu2404/x86_64/")


@pytest.mark.parametrize("driver,arch,newest", [
    ("580.95.05", None, "13.0"),     # R580 runs CUDA 13.0 (13.1 needs R590)
    ("580.95.05", "pascal", "12.9"),  # CUDA 13 dropped Pascal: the newest 12.x instead
    ("550.54.15", None, "12.4"),
    ("550.54.14", None, "12.4"),     # 12.4 GA's floor, below 12.4 Update 1's
    ("570.124.06", None, "12.8"),
])
def test_newest_toolkit_the_driver_fully_supports(driver, arch, newest):
    plan = cuda_toolkit_plan("rhel-9", driver, driver_source="nvidia", arch=arch)
    assert plan["default"] == newest and plan["packages"] == [f"cuda-toolkit-{newest.replace('.', '-')}"]
    assert plan["toolkits"][0]["runs_on_driver"] == "ok"


def test_debian_toolkit_with_nvidia_driver_comes_from_nvidia():
    # The driver from NVIDIA's repository: its toolkit comes from there too, even on Debian.
    plan = cuda_toolkit_plan("debian-12", "580.95.05", driver_source="nvidia")
    assert plan["source"] == "nvidia" and plan["packages"] == ["cuda-toolkit-13-0"]


def test_minor_version_compatibility_only_when_asked():
    with pytest.raises(LlmhostError, match="cuda_toolkit_versions 12.8: .*minor-version.*allow_minor_compat"):
        cuda_toolkit_plan("debian-12", BOOKWORM_DRIVER, versions=["12.8"], source="nvidia")
    plan = cuda_toolkit_plan("debian-12", BOOKWORM_DRIVER, versions=["12.8"], source="nvidia", allow_minor=True)
    assert plan["toolkits"][0]["runs_on_driver"] == "minor"


@pytest.mark.parametrize("kwargs,needle", [
    ({"os_id": "debian-12", "driver": BOOKWORM_DRIVER, "source": "conda"}, "cuda_toolkit_source 'conda'"),
    ({"os_id": "debian-12", "driver": BOOKWORM_DRIVER, "versions": ["12.7"]}, "12.7 is not in the compatibility table"),
    ({"os_id": "debian-12", "driver": BOOKWORM_DRIVER, "versions": ["12.4"], "source": "distribution"},
     "packages only CUDA 11.8"),
    ({"os_id": "rhel-9", "driver": "580.95.05", "source": "distribution"}, "packages no CUDA toolkit"),
    ({"os_id": "ubuntu-24.04", "driver": "470.256.02", "versions": ["12.4"], "source": "nvidia"},
     "needs driver >= 550.54.14"),
    ({"os_id": "ubuntu-24.04", "driver": "580.95.05", "versions": ["13.0"], "source": "nvidia", "arch": "volta"},
     "CUDA 13 dropped volta"),
    ({"os_id": "ubuntu-24.04", "driver": "580.95.05", "versions": ["12.8"], "source": "nvidia", "default": "13.0"},
     "cuda_toolkit_default '13.0'"),
    ({"os_id": "debian-12", "driver": ""}, "driver version is needed"),
])
def test_bad_settings_are_refused_by_name(kwargs, needle):
    with pytest.raises(LlmhostError, match=needle):
        cuda_toolkit_plan(**kwargs)


def test_no_nvswitch_no_fabric_manager():
    assert fabricmanager_plan("debian-12", "distribution", 535, BOOKWORM_DRIVER, 0)["needed"] is False


@pytest.mark.parametrize("os_id,source,installed,packages", [
    # Ubuntu's own packages carry Ubuntu's revision: the pin matches the driver's upstream version only.
    ("ubuntu-24.04", "distribution", "580.126.20-0ubuntu0.24.04.1",
     ["nvidia-fabricmanager-580=580.126.20*", "libnvidia-nscq-580=580.126.20*"]),
    ("debian-12", "nvidia", "580.95.05-1", ["nvidia-fabricmanager-580=580.95.05*", "libnvidia-nscq-580=580.95.05*"]),
    ("rocky-9", "nvidia", "580.95.05", ["cuda-drivers-fabricmanager-580-580.95.05"]),
])
def test_fabric_manager_is_pinned_to_the_driver(os_id, source, installed, packages):
    plan = fabricmanager_plan(os_id, source, 580, installed, 8)
    assert plan["needed"] and plan["packages"] == packages and plan["service"] == "nvidia-fabricmanager"


def test_fabric_manager_waits_for_the_driver_version():
    plan = fabricmanager_plan("ubuntu-22.04", "distribution", 580, None, 4)
    assert plan["needed"] and plan["version"] is None and plan["packages"] == []


def test_debian_driver_on_nvswitch_is_sent_to_nvidia():
    with pytest.raises(LlmhostError, match="no Fabric Manager: .*nvidia_driver_source=nvidia"):
        fabricmanager_plan("debian-13", "distribution", 550, TRIXIE_DRIVER, 6)
