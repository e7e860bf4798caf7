"""driver.*: is the NVIDIA driver installed, loaded, buildable for this kernel and loadable under Secure Boot."""

from __future__ import annotations

from llmhost.checks import check, failed, passed, skipped, warned
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.parsers import ParseError, system

SECURE_BOOT_EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0101bb8c"

REMEDIES = {
    "not-installed": "install the driver: 'ansible-playbook site.yml' (role nvidia_driver) or your distribution's "
                     "package; 'llmhost compat' names the branch and packages",
    "no-driver": "the kernel module is not loaded: 'modprobe nvidia' and read 'dmesg | grep -i nvrm'; check "
                 "nouveau, Secure Boot and DKMS (see driver.nouveau, driver.secure_boot, driver.dkms)",
    "version-mismatch": "the user-space libraries were upgraded under a loaded kernel module: reboot (or unload "
                        "and reload nvidia modules); then hold the packages so it cannot recur",
    "unknown": "run 'nvidia-smi' by hand and read its error",
}


@check("driver.loaded", "The NVIDIA driver is installed and answers", needs_gpu=True)
def loaded(facts: Facts):
    state = facts.driver_state
    if state["state"] == "not-captured":
        yield skipped(state["detail"])
    elif state["state"] == "loaded":
        module = facts.kernel_module or {}
        flavour = f", {module['flavour']} kernel modules" if module.get("flavour") else ""
        yield passed(f"driver {state['version']} loaded{flavour}", version=state["version"],
                     flavour=module.get("flavour"))
    else:
        yield failed(f"{state['state']}: {state['detail']}", REMEDIES[state["state"]], state=state["state"])


@check("driver.nouveau", "nouveau is not loaded", needs_gpu=True)
def nouveau(facts: Facts):
    if "nouveau" in facts.modules:
        yield failed("nouveau kernel module is loaded and holds the GPU", "blacklist it ('blacklist nouveau' and "
                     "'options nouveau modeset=0' in /etc/modprobe.d), rebuild the initramfs, reboot; role "
                     "nvidia_driver does this")
    else:
        yield passed("nouveau not loaded")


@check("driver.secure_boot", "Secure Boot will not block the module")
def secure_boot(facts: Facts):
    enabled = None
    result = facts.host.run("mokutil-sb-state")
    if result is not None and not result.not_installed:
        try:
            enabled = system.secure_boot(result.out + result.err)
        except ParseError:
            enabled = None
    if enabled is None:
        raw = facts.host.read_bytes(SECURE_BOOT_EFIVAR)
        if raw is not None:
            try:
                enabled = system.secure_boot_efivar(raw)
            except ParseError:
                enabled = None
    if enabled is None:
        if not facts.host.knows("/sys/firmware/efi"):
            yield skipped("Secure Boot state unknown (neither mokutil's answer nor /sys/firmware was captured)")
            return
        if facts.host.listdir("/sys/firmware/efi") is None:
            yield passed("legacy BIOS boot: no Secure Boot")
        else:
            yield skipped("Secure Boot state unknown (no mokutil, efivars not readable)")
        return
    if not enabled:
        yield passed("Secure Boot disabled")
    elif facts.gpus and facts.driver_state["state"] != "loaded":
        yield failed("Secure Boot enabled and the NVIDIA driver is not loaded: an unsigned module is refused",
                     "sign the module with a MOK ('llmhost_secure_boot_sign: true' in role nvidia_driver "
                     "generates the key and runs 'mokutil --import'); enrol it at the console on the next boot")
    else:
        yield passed("Secure Boot enabled and the driver is loaded (module signed)")


@check("driver.kernel_headers", "Headers for the running kernel are installed", needs_gpu=True)
def kernel_headers(facts: Facts):
    release = facts.kernel_release
    if facts.host.read(f"/lib/modules/{release}/build/Makefile") is not None:
        yield passed(f"headers for {release} installed", kernel=release)
    else:
        yield warned(f"no headers for the running kernel {release}: DKMS cannot build the module for it",
                     f"install the headers (Debian: linux-headers-{release}; Ubuntu: linux-headers-{release}; "
                     "RHEL: kernel-devel-$(uname -r))", kernel=release)


@check("driver.dkms", "DKMS has built the module for the running kernel", needs_gpu=True)
def dkms(facts: Facts):
    try:
        result = facts.command("dkms-status")
    except Unavailable:
        yield skipped("dkms not installed (precompiled or distribution-signed modules need none)")
        return
    release = facts.kernel_release
    entries = [e for e in system.dkms_status(result.out) if e["module"].startswith("nvidia")]
    if not entries:
        yield skipped("no nvidia module under DKMS")
        return
    built = [e for e in entries if e["kernel"] == release and e["state"] == "installed"]
    if built:
        yield passed(f"{built[0]['module']} {built[0]['version']} installed for {release}")
    else:
        kernels = ", ".join(sorted({e["kernel"] for e in entries}))
        yield failed(f"nvidia DKMS module not installed for the running kernel {release} (built for: {kernels})",
                     "install the headers for this kernel and run 'dkms autoinstall'", kernels=kernels)


@check("driver.persistenced", "nvidia-persistenced is running", needs_gpu=True)
def persistenced(facts: Facts):
    try:
        result = facts.command("persistenced-active")
    except Unavailable as exc:
        yield skipped(str(exc))
        return
    state = result.out.strip() or "unknown"
    if state == "active":
        yield passed("nvidia-persistenced active")
    else:
        yield warned(f"nvidia-persistenced is {state}", "install and enable it "
                     "('systemctl enable --now nvidia-persistenced'); a masked unit must be unmasked first",
                     state=state)
