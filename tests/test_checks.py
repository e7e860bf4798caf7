"""The check catalogue replayed on snapshots assembled from real captures: statuses asserted."""

from __future__ import annotations

import pytest

from conftest import REAL, replay, results, smi, status, sysfs_gpu, write_snapshot

T4 = "0000:00:1e.0"
A100 = "0000:01:00.0"
NOT_INSTALLED = ("", "nvidia-smi: command not found", 127)


def test_t4_at_x8_of_x16_fails_link_width_and_small_bar1_warns(snap):
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")}))
    assert status(report, "gpu.present") == "pass"
    assert status(report, "driver.loaded") == "pass"
    width = results(report, "pcie.link_width", T4)[0]
    assert width.status == "fail" and "x8 of x16" in width.message and width.remedy
    assert status(report, "pcie.link_speed", T4) == "pass"
    bar = results(report, "pcie.resizable_bar", T4)[0]
    assert bar.status == "warn" and "256 MiB" in bar.message and "15360 MiB" in bar.message
    assert status(report, "gpu.persistence_mode", T4) == "warn"
    assert status(report, "gpu.ecc", T4) == "pass"
    assert status(report, "compat.gpu_driver", T4) == "pass"  # Turing on 515
    assert status(report, "memory.ram_vs_vram") == "pass"  # 62.5 GiB RAM vs 15 GiB
    assert report.exit_code() == 1


def test_a100_with_mig_enabled_warns_and_is_compatible(snap):
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml")}))
    mig = results(report, "gpu.mig", A100)[0]
    assert mig.status == "warn" and "MIG enabled" in mig.message
    assert status(report, "pcie.link_width", A100) == "pass"
    assert status(report, "pcie.resizable_bar", A100) == "pass"  # BAR1 128 GiB >= 80 GiB
    assert status(report, "compat.gpu_driver", A100) == "pass"
    ram = results(report, "memory.ram_vs_vram")[0]
    assert ram.status == "warn" and ram.data["vram_mib"] == 81920  # 62.5 GiB < 2 x 80 GiB


def test_p100_old_schema_two_gpus(snap):
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-p100-pcie-12gb-x2-375.66.xml")}))
    assert results(report, "gpu.present")[0].data["count"] == 2
    assert {r.subject for r in results(report, "gpu.ecc")} == {"0000:04:00.0", "0000:82:00.0"}
    assert status(report, "gpu.ecc") == "pass"
    assert status(report, "compat.gpu_driver") == "pass"  # Pascal, 375.66 >= 367.48
    eol = results(report, "compat.driver_eol")[0]
    assert eol.status == "warn"  # R375 is not in the lifecycle table


def test_idle_gen_drop_passes_but_busy_gen_drop_warns(snap, tmp_path):
    # sysfs of the RTX A6000 from lspci-rtx-a6000.txt: gen 1 (2.5 GT/s) of gen 4, x16 of x16, no driver answer.
    gpu = sysfs_gpu("0000:01:00.0", "2230", speed=("2.5 GT/s PCIe", "16.0 GT/s PCIe"), bar1_bytes=256 << 20)
    lspci = ((REAL / "lspci-rtx-a6000.txt").read_text().replace("01:00.0", "0000:01:00.0", 1), "", 0)
    report = replay(snap(files=gpu, cmds={"lspci-vvv": lspci, "nvidia-smi-q-x": NOT_INSTALLED}))
    speed = results(report, "pcie.link_speed", "0000:01:00.0")[0]
    assert speed.status == "pass" and "idle" in speed.message
    bar = results(report, "pcie.resizable_bar", "0000:01:00.0")[0]
    assert bar.status == "warn" and "65536 MiB" in bar.message  # supports 64 GB, runs 256 MB
    assert status(report, "gpu.present") == "pass"
    assert results(report, "gpu.present")[0].message.endswith("RTX A6000")  # identified from the PCI id alone

    busy = tmp_path / "busy"
    from conftest import write_snapshot
    xml = (REAL / "nvsmi-tesla-p100-pcie-12gb-x2-375.66.xml").read_text().replace(
        "<current_link_gen>3</current_link_gen>", "<current_link_gen>1</current_link_gen>", 1)
    report = replay(write_snapshot(busy, cmds={"nvidia-smi-q-x": (xml, "", 0)}))
    # GPU 0 is at 33.4 % utilisation: a gen drop under load is a real finding.
    assert status(report, "pcie.link_speed", "0000:04:00.0") == "warn"
    assert status(report, "pcie.link_speed", "0000:82:00.0") == "pass"


def test_no_driver_text_is_told_apart(snap):
    text = (REAL / "nvidia-smi-err-no-driver.txt").read_text()
    report = replay(snap(files={**sysfs_gpu("0000:01:00.0", "2330"), "/proc/modules": "ext4 1 0 - Live\n"},
                         cmds={"nvidia-smi-q-x": (text, "", 9)}))
    loaded = results(report, "driver.loaded")[0]
    assert loaded.status == "fail" and loaded.data["state"] == "no-driver"
    assert "modprobe nvidia" in loaded.remedy
    # GPU facts still come from sysfs: an H100 identified before any driver answers.
    assert "NVIDIA H100 80GB HBM3" in results(report, "gpu.present")[0].message
    assert status(report, "gpu.ecc") == "skip"


def test_version_mismatch_names_the_fix(snap):
    text = (REAL / "nvidia-smi-err-version-mismatch.txt").read_text()
    files = {**sysfs_gpu("0000:01:00.0", "2330"),
             "/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.63.01  Tue Aug 3\n"}
    report = replay(snap(files=files, cmds={"nvidia-smi-q-x": (text, "", 18)}))
    loaded = results(report, "driver.loaded")[0]
    assert loaded.status == "fail" and loaded.data["state"] == "version-mismatch"
    assert "470.63.01" in loaded.message and "reboot" in loaded.remedy


def test_driver_not_installed(snap):
    report = replay(snap(files={**sysfs_gpu("0000:01:00.0", "2684"), "/proc/modules": "ext4 1 0 - Live\n"},
                         cmds={"nvidia-smi-q-x": NOT_INSTALLED}))
    assert results(report, "driver.loaded")[0].data["state"] == "not-installed"


def test_nouveau_loaded_fails(snap):
    report = replay(snap(files={**sysfs_gpu("0000:01:00.0", "2684"), "/proc/modules": "nouveau 1 0 - Live\n"},
                         cmds={"nvidia-smi-q-x": NOT_INSTALLED}))
    assert status(report, "driver.nouveau") == "fail"


def test_numa_node_from_topology_when_sysfs_hides_it(snap):
    files = {**sysfs_gpu("0000:01:00.0", "2330", numa="-1", cpus=None),
             **sysfs_gpu("0000:02:00.0", "2330", numa="-1", cpus=None),
             "/sys/devices/system/node/node0/cpulist": "0-23", "/sys/devices/system/node/node1/cpulist": "24-47"}
    topo = ((REAL / "topo-4gpu-nv12-pairs-4numa.txt").read_text(), "", 0)
    report = replay(snap(files=files, cmds={"nvidia-smi-topo-m": topo, "nvidia-smi-q-x": NOT_INSTALLED}))
    second = results(report, "numa.gpu_affinity", "0000:02:00.0")[0]
    assert second.status == "pass" and second.data["numa_node"] == 1 and second.data["cpus"] == "24-47"


def test_unknown_numa_node_on_multi_node_host_warns(snap):
    files = {**sysfs_gpu("0000:01:00.0", "2330", numa="-1", cpus=None),
             "/sys/devices/system/node/node0/cpulist": "0-23", "/sys/devices/system/node/node1/cpulist": "24-47",
             "/proc/sys/kernel/numa_balancing": "1\n"}
    report = replay(snap(files=files, cmds={"nvidia-smi-q-x": NOT_INSTALLED}))
    assert status(report, "numa.gpu_affinity") == "warn"
    assert status(report, "numa.balancing") == "warn"


@pytest.mark.parametrize("xid,expected", [(79, "fail"), (13, "warn")])
def test_xid_in_kernel_log(snap, xid, expected):
    log = f"[  812.1] NVRM: Xid (PCI:0000:00:1e): {xid}, pid=1234, name=python\n"
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml"), "kernel-log": (log, "", 0)}))
    assert status(report, "gpu.xid") == expected


def test_ecc_uncorrectable_and_pending_retirement_fail(snap):
    xml = (REAL / "nvsmi-tesla-t4-515.105.01.xml").read_text()
    xml = xml.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>3</dram_uncorrectable>")
    xml = xml.replace("<pending_retirement>No</pending_retirement>", "<pending_retirement>Yes</pending_retirement>")
    report = replay(snap(cmds={"nvidia-smi-q-x": (xml, "", 0)}))
    ecc = results(report, "gpu.ecc", T4)[0]
    assert ecc.status == "fail" and "uncorrectable" in ecc.message and "pending" in ecc.message


T4_XML, A100_XML = "nvsmi-tesla-t4-515.105.01.xml", "nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"


@pytest.mark.parametrize("fixture,old,new,check_id,subject,expected", [
    (T4_XML, "<dram_correctable>0</dram_correctable>", "<dram_correctable>12</dram_correctable>", "gpu.ecc", T4, "warn"),
    (A100_XML, "<clocks_event_reason_hw_thermal_slowdown>Not Active", "<clocks_event_reason_hw_thermal_slowdown>Active",
     "gpu.throttle", A100, "fail"),
    (A100_XML, "<clocks_event_reason_sw_power_cap>Not Active", "<clocks_event_reason_sw_power_cap>Active",
     "gpu.throttle", A100, "warn"),
    (T4_XML, "<power_limit>70.00 W</power_limit>", "<power_limit>60.00 W</power_limit>", "gpu.power_limit", T4, "warn"),
    (T4_XML, "<gpu_temp>40 C</gpu_temp>", "<gpu_temp>90 C</gpu_temp>", "gpu.temperature", T4, "warn"),
], ids=["correctable-ecc", "thermal-slowdown", "power-cap", "power-limit-below-default", "hot-gpu"])
def test_one_changed_reading_changes_one_status(snap, fixture, old, new, check_id, subject, expected):
    original = (REAL / fixture).read_text()
    xml = original.replace(old, new)
    assert xml != original, f"{fixture} no longer contains {old!r}"
    assert status(replay(snap(cmds={"nvidia-smi-q-x": (original, "", 0)})), check_id, subject) == "pass"
    assert status(replay(snap(cmds={"nvidia-smi-q-x": (xml, "", 0)})), check_id, subject) == expected


def test_memory_tuning_findings(snap):
    files = {"/proc/sys/vm/swappiness": "60\n", "/sys/kernel/mm/transparent_hugepage/enabled": "always madvise [never]\n",
             "/proc/self/limits": "Max locked memory         8388608              8388608              bytes\n",
             "/proc/meminfo": "MemTotal: 1000000 kB\nSwapTotal: 4000000 kB\nSwapFree: 1000000 kB\n"
                              "HugePages_Total: 400\nHugePages_Free: 400\nHugepagesize: 2048 kB\n"}
    report = replay(snap(files=files))
    for check_id in ("memory.swappiness", "memory.thp", "memory.memlock", "memory.swap", "memory.hugepages"):
        assert status(report, check_id) == "warn", check_id


def test_one_gib_pages_count_toward_the_reservation(snap):
    files = {"/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages": "40\n",
             "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "0\n"}
    result = results(replay(snap(files=files)), "memory.hugepages")[0]
    assert result.status == "warn" and result.data["reserved_mib"] == 40 * 1024  # 40 GiB of 62.5 GiB RAM
    assert "40 x 1024 MiB" in result.message


def test_secure_boot_enabled_with_driver_not_loaded_fails(snap):
    report = replay(snap(files={**sysfs_gpu("0000:01:00.0", "2684"), "/proc/modules": "ext4 1 0 - Live\n"},
                         cmds={"nvidia-smi-q-x": NOT_INSTALLED, "mokutil-sb-state": ("SecureBoot enabled\n", "", 0)}))
    sb = results(report, "driver.secure_boot")[0]
    assert sb.status == "fail" and "MOK" in sb.remedy


def test_dkms_module_missing_for_running_kernel_fails(snap):
    dkms = ("nvidia/535.261.03, 6.1.0-25-amd64, x86_64: installed\n", "", 0)
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"), "dkms-status": dkms}))
    assert status(report, "driver.dkms") == "fail"
    assert status(report, "driver.kernel_headers") == "warn"


def test_cuda_toolkit_newer_than_driver(snap):
    nvcc = ("nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.4, V12.4.131\n", "", 0)
    report = replay(snap(cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"), "nvcc-version": nvcc}))
    cuda = results(report, "compat.driver_cuda")[0]
    assert cuda.status == "warn" and "minor-version" in cuda.message  # 535.54.03 < 550.54.14 but >= 525.60.13


def test_docker_without_nvidia_runtime_warns(snap):
    files = {"/etc/docker/daemon.json": '{"log-driver": "journald"}'}
    cmds = {"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml"), "nvidia-ctk-version": ("NVIDIA Container Toolkit CLI version 1.17.0\n", "", 0)}
    assert status(replay(snap(files=files, cmds=cmds)), "container.runtime") == "warn"
    files["/etc/docker/daemon.json"] = '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}'
    assert status(replay(snap(files=files, cmds=cmds)), "container.runtime") == "pass"


def test_unattended_upgrades_warn_unless_nvidia_excluded(snap):
    on = {"/etc/apt/apt.conf.d/20auto-upgrades": 'APT::Periodic::Unattended-Upgrade "1";\n'}
    assert status(replay(snap(files=on)), "os.unattended_upgrades") == "warn"


def test_unsupported_os_warns(snap):
    report = replay(snap(files={"/etc/os-release": 'ID=arch\nVERSION_ID="rolling"\nPRETTY_NAME="Arch Linux"\n'}))
    assert status(report, "os.supported") == "warn"


INTEL_ONLY_BUS = {"/sys/bus/pci/devices/0000:00:02.0/vendor": "0x8086\n",
                  "/sys/bus/pci/devices/0000:00:02.0/class": "0x030000\n"}


def test_no_gpu_host_fails_gpu_present_and_skips_the_rest(snap):
    report = replay(snap(files=INTEL_ONLY_BUS, cmds={"nvidia-smi-q-x": NOT_INSTALLED}))
    assert status(report, "gpu.present") == "fail"
    for check_id in ("gpu.ecc", "pcie.link_width", "driver.loaded", "compat.gpu_driver"):
        assert status(report, check_id) == "skip"


def test_without_a_source_that_lists_gpus_their_absence_is_unknown_not_no(snap):
    # A bare box before the driver: no nvidia-smi, and this snapshot holds no sysfs or lspci.
    report = replay(snap(cmds={"nvidia-smi-q-x": NOT_INSTALLED}))
    assert status(report, "gpu.present") == "skip"
    assert status(report, "driver.secure_boot") == "skip" and status(report, "numa.balancing") != "fail"


def test_single_source_snapshots_judge_what_their_source_shows(tmp_path):
    lspci = write_snapshot(tmp_path / "lspci", base=False,
                           cmds={"lspci-vvv": ((REAL / "lspci-rtx-a6000.txt").read_text(), "", 0)})
    report = replay(lspci)
    assert status(report, "gpu.present") == "pass" and status(report, "pcie.link_width") == "pass"
    assert status(report, "pcie.resizable_bar") == "warn" and status(report, "driver.loaded") == "skip"
    assert status(report, "driver.secure_boot") == "skip" and status(report, "numa.gpu_affinity") == "skip"
    smi_only = write_snapshot(tmp_path / "smi", base=False, cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    report = replay(smi_only)
    assert status(report, "gpu.present") == "pass" and status(report, "driver.loaded") == "pass"
    assert status(report, "pcie.link_width") == "fail"  # the T4 capture is at x8 of x16
    mismatch = write_snapshot(tmp_path / "err", base=False, cmds={"nvidia-smi-q-x": (
        (REAL / "nvidia-smi-err-version-mismatch.txt").read_text(), "", 18)})
    report = replay(mismatch)
    assert status(report, "gpu.present") == "skip" and status(report, "driver.loaded") == "fail"


def test_skip_and_only(snap):
    root = snap(cmds={"nvidia-smi-q-x": smi("nvsmi-tesla-t4-515.105.01.xml")})
    report = replay(root, skip=("pcie.link_width",))
    assert status(report, "pcie.link_width") == "skip" and report.exit_code() == 0
    only = replay(root, only=("gpu.present", "memory.swappiness"))
    assert {r.id for r in only.results} == {"gpu.present", "memory.swappiness"}
    assert replay(root, skip=("pcie.link_width",)).exit_code(strict=True) == 1  # warnings remain


def _nvswitches(count: int) -> dict[str, str]:
    """sysfs of an HGX baseboard's NVSwitch chips: NVIDIA bridges (class 0x0680), H100 generation (22a3)."""
    files = {}
    for i in range(count):
        base = f"/sys/bus/pci/devices/0000:{0x05 + i:02x}:00.0"
        files.update({f"{base}/vendor": "0x10de\n", f"{base}/class": "0x068000\n", f"{base}/device": "0x22a3\n"})
    return files


@pytest.mark.parametrize("service, expected", [(("inactive\n", "", 3), "fail"), (("active\n", "", 0), "pass")])
def test_nvswitch_baseboard_needs_fabric_manager_running(snap, service, expected):
    # The A100 SXM capture reports the fabric as N/A (Ampere): the service's state decides.
    report = replay(snap(files=_nvswitches(6), cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"),
                                                     "fabricmanager-active": service}))
    found = results(report, "gpu.fabric_manager")[0]
    assert found.status == expected and found.data["nvswitches"] == 6
    if expected == "fail":
        assert "error 802" in found.message and "inactive" in found.message and "nvidia_driver" in found.remedy


def test_no_nvswitch_means_no_fabric_manager_needed(snap):
    report = replay(snap(files=INTEL_ONLY_BUS, cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml")}))
    assert status(report, "gpu.fabric_manager") == "pass"


def test_without_the_pci_bus_nobody_can_say_there_is_no_nvswitch(tmp_path):
    report = replay(write_snapshot(tmp_path / "s", cmds={"nvidia-smi-q-x": smi("nvsmi-a100-sxm4-80gb-mig-535.54.03.xml")}))
    assert status(report, "gpu.fabric_manager") == "skip"


@pytest.mark.parametrize("state, fabric_status, expected", [
    ("Completed", "Success", "pass"), ("In Progress", "N/A", "warn"), ("Not Started", "N/A", "fail"),
    ("Completed", "Insufficient Resources", "fail")])
def test_reported_fabric_state_decides_even_without_local_nvswitch(snap, state, fabric_status, expected):
    # Hopper and later fill the <fabric> block the A100 capture leaves N/A (state names as nvidia-smi prints them).
    xml = (REAL / "nvsmi-a100-sxm4-80gb-mig-535.54.03.xml").read_text()
    xml = xml.replace("<fabric>\n            <state>N/A</state>\n            <status>N/A</status>",
                      f"<fabric>\n            <state>{state}</state>\n            <status>{fabric_status}</status>")
    assert f"<state>{state}</state>" in xml
    report = replay(snap(cmds={"nvidia-smi-q-x": (xml, "", 0)}))
    found = results(report, "gpu.fabric_manager", A100)[0]
    assert found.status == expected and found.data["fabric_state"] == state
