"""The Ansible filters the roles choose with: driver decisions for platforms that cannot be converged
here (Ubuntu, RHEL) are tested from their rendered output."""

from __future__ import annotations

import datetime as dt
import json
import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from llmhost.knowledge import compat

spec = importlib.util.spec_from_file_location(
    "llmhost_knowledge_filters", Path(__file__).parents[1] / "plugins" / "filter" / "llmhost_knowledge.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)
F = filters.FilterModule().filters()


@pytest.mark.parametrize("facts,key", [
    ({"distribution": "Debian", "distribution_version": "12.7"}, "debian-12"),
    ({"distribution": "Debian", "distribution_version": "13"}, "debian-13"),
    ({"distribution": "Ubuntu", "distribution_version": "24.04"}, "ubuntu-24.04"),
    ({"distribution": "Rocky", "distribution_version": "9.4"}, "rocky-9"),
])
def test_os_key_from_gathered_facts(facts, key):
    assert F["llmhost_os_key"](facts) == key


def test_container_detection():
    assert F["llmhost_in_container"]({"virtualization_role": "guest", "virtualization_type": "podman"})
    assert not F["llmhost_in_container"]({"virtualization_role": "guest", "virtualization_type": "kvm"})
    assert not F["llmhost_in_container"]({"virtualization_role": "host", "virtualization_type": "podman"})


def test_arch_from_pci_ids():
    assert F["llmhost_arch_for_pci_ids"](["0x2330", "0x2330"]) == "hopper"
    assert F["llmhost_arch_for_pci_ids"]([]) is None
    with pytest.raises(AnsibleFilterError, match="several architectures"):
        F["llmhost_arch_for_pci_ids"](["0x2330", "0x2684"])


TODAY = dt.date(2026, 11, 21)


@pytest.mark.parametrize("os_id,arch,modules,source,branch,expected", [
    # Debian from its own archive: the branch it ships, proprietary by default, the headless package set.
    ("debian-12", None, "auto", "distribution", None,
     {"branch": 535, "modules": "proprietary", "version": "535.261.03", "repository": None,
      "packages": ["nvidia-kernel-dkms", "nvidia-smi", "libcuda1", "libnvidia-ml1", "firmware-misc-nonfree"]}),
    ("debian-13", "ampere", "open", "distribution", None,
     {"branch": 550, "modules": "open", "version": "550.163.01",
      "packages": ["nvidia-open-kernel-dkms", "nvidia-smi", "libcuda1", "libnvidia-ml1", "firmware-misc-nonfree"]}),
    # Debian 12's own R535 is past end of life: auto goes to NVIDIA's repository for R580.
    ("debian-12", "hopper", "auto", "auto", None,
     {"branch": 580, "modules": "open", "source": "nvidia",
      "repository": "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/"}),
    # Ubuntu: Canonical's -server packages, -open for the open flavour.
    ("ubuntu-24.04", "hopper", "auto", "auto", None,
     {"branch": 580, "modules": "open", "source": "distribution",
      "packages": ["nvidia-driver-580-server-open", "nvidia-dkms-580-server-open", "nvidia-utils-580-server"]}),
    ("ubuntu-22.04", "turing", "proprietary", "distribution", 535,
     {"branch": 535, "packages": ["nvidia-driver-535-server", "nvidia-dkms-535-server", "nvidia-utils-535-server"]}),
    # RHEL 9 and rebuilds: a dnf module stream from NVIDIA's repository pins the branch.
    ("rocky-9", "pascal", "auto", "auto", None,
     {"os": "rhel-9", "branch": 580, "modules": "proprietary", "packages": ["@nvidia-driver:580-dkms"],
      "repository": "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/"}),
    ("rhel-9", "blackwell", "auto", "nvidia", 580, {"modules": "open", "packages": ["@nvidia-driver:580-open"]}),
])
def test_install_plan(os_id, arch, modules, source, branch, expected):
    plan = compat.install_plan(os_id, arch, modules, source, branch, today=TODAY)
    assert {k: plan[k] for k in expected} == expected


@pytest.mark.parametrize("args,needle", [
    (("debian-12", "blackwell", "proprietary", "distribution", None), "cannot drive blackwell"),
    (("debian-12", None, "auto", "distribution", 580), "not packaged by debian-12"),
    (("rhel-9", None, "auto", "distribution", None), "ships no NVIDIA driver"),
    (("debian-12", "pascal", "auto", "nvidia", 590), "cannot drive pascal"),
    (("debian-12", None, "closed", "auto", None), "'closed'"),
])
def test_install_plan_refuses_with_the_variable_named(args, needle):
    with pytest.raises(AnsibleFilterError, match=needle):
        F["llmhost_install_plan"](*args)


def test_tuning_defaults_come_from_the_data_file():
    tuning = F["llmhost_data"]("tuning")
    assert tuning["sysctl"]["vm.swappiness"]["value"] == 10
    assert tuning["thp"]["value"] in ("always", "madvise")


def test_docker_daemon_merge_keeps_the_users_keys():
    users = '{"log-driver": "journald", "data-root": "/srv/docker", "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}}'
    merged = json.loads(F["llmhost_merge_docker_daemon"](users))
    assert merged["log-driver"] == "journald" and merged["data-root"] == "/srv/docker"
    assert merged["runtimes"]["runsc"] == {"path": "/usr/bin/runsc"}
    assert merged["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "default-runtime" not in merged
    again = F["llmhost_merge_docker_daemon"](json.dumps(merged, indent=2, sort_keys=True) + "\n")
    assert again == json.dumps(merged, indent=2, sort_keys=True) + "\n"  # nothing to add: same text
    assert json.loads(F["llmhost_merge_docker_daemon"]("", make_default=True))["default-runtime"] == "nvidia"


def test_docker_daemon_merge_refuses_broken_json():
    with pytest.raises(AnsibleFilterError, match="not valid JSON"):
        F["llmhost_merge_docker_daemon"]('{"log-driver": ')


def test_power_limit_range_check_names_the_gpus_out_of_range():
    lines = ["00000000:01:00.0, 100.00, 300.00", "00000000:02:00.0, 150.00, 250.00", "00000000:03:00.0, [N/A], [N/A]"]
    assert F["llmhost_power_limit_violations"](lines, "280") == ["00000000:02:00.0 (150-250 W)"]
    assert F["llmhost_power_limit_violations"](lines, "200") == []
    assert F["llmhost_power_limit_violations"](lines, "90") == ["00000000:01:00.0 (100-300 W)", "00000000:02:00.0 (150-250 W)"]


def test_gpu_placements_come_from_llmhost_facts(snap):
    from conftest import REAL, sysfs_gpu
    from llmhost.commands.facts_cmd import collect
    from llmhost.host.facts import Facts
    from llmhost.host.hostio import SnapshotHost

    files = {**sysfs_gpu("0000:01:00.0", "2330", numa="-1", cpus=None), **sysfs_gpu("0000:02:00.0", "2330", numa="1",
                                                                                     cpus="24-47"),
             "/sys/devices/system/node/node0/cpulist": "0-23", "/sys/devices/system/node/node1/cpulist": "24-47"}
    topo = ((REAL / "topo-4gpu-nv12-pairs-4numa.txt").read_text(), "", 0)
    host_facts = collect(Facts(SnapshotHost(snap(files=files, cmds={"nvidia-smi-topo-m": topo,
                                                                    "nvidia-smi-q-x": ("", "", 127)}))))
    placements = F["llmhost_gpu_placements"](json.loads(json.dumps(host_facts)))
    # The first GPU's node is hidden by its firmware (-1): nvidia-smi topo's affinity column gives it.
    assert placements == [{"address": "0000:01:00.0", "numa_node": 0, "cpus": "0-23"},
                          {"address": "0000:02:00.0", "numa_node": 1, "cpus": "24-47"}]
    assert host_facts["gpus"][0]["numa_origin"] == "nvidia-smi topo"
    assert F["llmhost_gpu_placements"]({"gpus": []}) == []


def test_a_gpu_whose_architecture_is_unknown_is_refused_naming_the_variable():
    with pytest.raises(AnsibleFilterError, match="nvidia_driver_gpu_arch"):
        F["llmhost_arch_for_pci_ids"](["0xffff"])
    with pytest.raises(AnsibleFilterError, match="nvidia_driver_gpu_arch"):
        F["llmhost_gpu_devices"]([{"address": "0000:01:00.0", "pci_device_id": "ffff"}])
    board = {"address": "0000:01:00.0", "pci_device_id": "1e30", "pci_subsystem_id": "10de:129e"}
    assert [d["name"] for d in F["llmhost_gpu_devices"]([board])] == ["Quadro RTX 8000"]
