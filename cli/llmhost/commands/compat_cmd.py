"""`llmhost compat`: is this GPU x driver x CUDA x OS x kernel combination supported, and what to install."""

from __future__ import annotations

import json
import re
import sys

import click

from llmhost.knowledge import compat as engine
from llmhost import knowledge
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.hostio import LiveHost, open_snapshot
from llmhost.knowledge.versions import parse_cuda, parse_driver, parse_kernel


def _from_host(facts: Facts) -> dict:
    """What this host (or snapshot) says, for each input the user did not give."""
    found: dict = {}

    def attempt(key, getter):
        try:
            value = getter()
        except Unavailable:
            return
        if value:
            found[key] = value

    attempt("arch", lambda: next((g["architecture"] for g in facts.gpus if g.get("architecture")), None))
    attempt("device", lambda: next((g["device"] for g in facts.gpus if g.get("device")), None))
    attempt("driver", lambda: str(facts.driver_version()))
    attempt("modules", lambda: (facts.kernel_module or {}).get("flavour"))
    attempt("os", facts.os_key)
    attempt("kernel", lambda: facts.kernel_release)

    def nvcc():
        result = facts.command("nvcc-version")
        match = re.search(r"V(\d+\.\d+\.\d+)", result.out)
        return match.group(1) if match else None

    attempt("cuda", nvcc)
    return found


@click.command()
@click.option("--gpu", metavar="NAME|PCI-ID", help="e.g. 'H100 PCIe', 10de:2330, 'RTX 4090'; a board by its "
              "subsystem id after a slash: 10de:1e30/10de:129e.")
@click.option("--driver", metavar="VERSION", help="e.g. 535.54.03")
@click.option("--cuda", metavar="VERSION", help="CUDA toolkit, e.g. 12.4 or 12.4.1")
@click.option("--modules", type=click.Choice(["open", "proprietary"]), help="Kernel module flavour.")
@click.option("--os", "os_id", metavar="ID-VERSION", help="e.g. debian-12, ubuntu-24.04, rhel-9")
@click.option("--kernel", metavar="VERSION", help="e.g. 6.8.0-45-generic")
@click.option("--snapshot", "snapshot_path", metavar="PATH", help="Read what is not given from a snapshot.")
@click.option("--no-host", is_flag=True, help="Use only the values given; read nothing from this host.")
@click.option("--json", "as_json", is_flag=True)
def compat(gpu, driver, cuda, modules, os_id, kernel, snapshot_path, no_host, as_json):
    """Say whether a GPU, driver, CUDA, OS and kernel work together, and what to install.

    Exit 0 compatible or minor-compatible, 1 incompatible, 2 bad input.
    """
    given = {"driver": driver, "cuda": cuda, "modules": modules, "os": os_id, "kernel": kernel}
    # Validate what the user typed before reading anything else.
    device = knowledge.resolve_gpu(gpu) if gpu else None
    arch = device["arch"] if device else None
    driver_v = parse_driver(driver) if driver else None
    cuda_v = parse_cuda(cuda) if cuda else None
    if kernel:
        parse_kernel(kernel)
    if os_id:
        knowledge.platform(os_id)
    found: dict = {}
    if not no_host:
        host, tmp = open_snapshot(snapshot_path) if snapshot_path else (LiveHost(), None)
        try:
            found = _from_host(Facts(host))
        finally:
            if tmp:
                tmp.cleanup()
    arch = arch or found.get("arch")
    device = device or (found.get("device") if not gpu else None)
    driver_v = driver_v or (parse_driver(found["driver"]) if "driver" in found else None)
    cuda_v = cuda_v or (parse_cuda(found["cuda"]) if "cuda" in found else None)
    modules = modules or found.get("modules")
    os_id = os_id or found.get("os")
    kernel = kernel or found.get("kernel")
    try:
        knowledge.platform(os_id) if os_id else None
    except Exception:  # noqa: BLE001 - an unsupported host OS read from the host is not the user's input
        os_id = None
    result = engine.evaluate(arch, driver_v, cuda_v, modules, os_id, kernel, device=device)
    gpu_info = {k: device[k] for k in ("pci_id", "subsystem", "name", "chip", "modules", "legacy_branch")
                if device and device.get(k)} or None
    inputs = {"gpu": gpu_info, "gpu_arch": arch, "driver": str(driver_v) if driver_v else None, "cuda": cuda_v.short if cuda_v else None,
              "modules": modules, "os": os_id, "kernel": kernel,
              "from_host": sorted(k for k in found if not given.get(k) and not (k in ("arch", "device") and gpu))}
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "inputs": inputs}, indent=2))
    else:
        shown = ", ".join(f"{k}={v}" for k, v in inputs.items() if v and k not in ("from_host", "gpu"))
        if gpu_info:
            shown = f"gpu={gpu_info['name']}" + (f" [10de:{gpu_info['pci_id']}]" if gpu_info.get("pci_id") else "") \
                + (", " + shown if shown else "")
        click.echo(f"{result.verdict.upper()}  ({shown})")
        for reason in result.reasons:
            click.echo(f"  [{reason.level:5}] {reason.rule}: {reason.message}")
        rec = result.recommended
        if rec.get("branch"):
            click.echo(f"recommended: R{rec['branch']} driver, {rec['modules']} modules, from {rec['source']}"
                       + (f" ({rec['repository']})" if rec.get("repository") else ""))
            if rec.get("packages"):
                click.echo(f"  packages: {' '.join(rec['packages'])}")
            if rec.get("distribution_alternative"):
                alt = rec["distribution_alternative"]
                click.echo(f"  or from the distribution: R{alt['branch']}: {' '.join(alt['packages'])}")
            click.echo(f"  newest CUDA it runs: {rec['newest_cuda']}")
    sys.exit(1 if result.verdict == "incompatible" else 0)
