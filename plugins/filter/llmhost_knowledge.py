"""Ansible filters over llmhost's knowledge base, so roles choose from the same data as the CLI.

    {{ 'tuning' | llmhost_data }}                          the parsed data file
    {{ 'debian-12' | llmhost_recommend(arch='hopper') }}   driver branch, modules, packages, repository
    {{ '535.261.03' | llmhost_newest_cuda }}               newest CUDA (MAJOR.MINOR) this driver runs
    {{ '12.4' | llmhost_cuda_min_driver }}                 minimum driver for a toolkit
    {{ 'debian-12' | llmhost_install_plan(arch, modules, source, branch) }}  what nvidia_driver installs
    {{ ['0x2330'] | llmhost_arch_for_pci_ids }}            architecture of the host's GPUs
    {{ facts.gpus | llmhost_gpu_devices }}                 each GPU (llmhost facts) as NVIDIA's lists know it
    {{ plan | llmhost_llama_server_args(model, alias, host, port, ...) }}  llama-server's flags, checked
    {{ 'debian-12' | llmhost_cuda_toolkit_plan(driver, ...) }}  what cuda_toolkit installs
    {{ 'ubuntu-24.04' | llmhost_fabricmanager_plan(source, branch, version, nvswitches) }}
    {{ gateway_clients | llmhost_gateway_registry }}           the gateway's clients, checked, as nginx reads them
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from llmhost import knowledge
    from llmhost.host import engine_config
    from llmhost.knowledge import compat, install_plans
    from llmhost.runtime import artefact, flags
    from llmhost.errors import LlmhostError
    from llmhost.gateway import clients as gateway_clients
    from llmhost.knowledge.versions import parse_cuda, parse_driver
except ImportError as exc:  # the controller's Python must have llmhost installed (scripts/venv.sh)
    raise AnsibleFilterError(f"llmhost is not importable by Ansible's Python: {exc}; run scripts/venv.sh") from exc


def _guard(func):
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LlmhostError as exc:
            raise AnsibleFilterError(str(exc)) from None
    wrapper.__name__ = func.__name__
    return wrapper


@_guard
def llmhost_data(name):
    return knowledge.load(str(name))


@_guard
def llmhost_recommend(os_id, arch=None, modules=None):
    return compat.recommend(arch or None, str(os_id), modules or None)


@_guard
def llmhost_install_plan(os_id, arch=None, modules="auto", source="auto", branch=None, devices=None):
    return compat.install_plan(str(os_id), arch or None, str(modules), str(source), branch or None,
                               devices=list(devices or []) or None)


@_guard
def llmhost_gpu_devices(gpus):
    """`llmhost facts --json` GPU records -> what NVIDIA's device lists say of each (name, architecture,
    module flavours, first driver per branch). A GPU those lists do not know is refused: the driver
    role never guesses a module flavour."""
    devices = []
    for gpu in gpus:
        entry = knowledge.gpu_by_pci_id(str(gpu.get("pci_device_id") or ""), gpu.get("pci_subsystem_id"))
        if entry is None or not entry.get("arch"):
            ident = gpu.get("pci_device_id") or "?"
            raise AnsibleFilterError(f"GPU 10de:{ident} at {gpu.get('address', '?')} is not in NVIDIA's device lists "
                                     "known to llmhost: set nvidia_driver_gpu_arch (hopper, ada, ampere, ...)")
        devices.append(entry)
    return devices


@_guard
def llmhost_arch_for_pci_ids(device_ids):
    """['0x2330', '0x2330'] (sysfs 'device' files of NVIDIA GPUs) -> the architecture, or None when
    there are no GPUs; a GPU whose architecture NVIDIA's lists and pci.ids cannot tell is refused: a
    module flavour is never guessed."""
    archs = set()
    for device in device_ids:
        arch = (knowledge.gpu_by_pci_id(str(device)) or {}).get("arch")
        if not arch:
            raise AnsibleFilterError(f"the architecture of GPU 10de:{knowledge.device_key(str(device)) or device} "
                                     "is unknown to llmhost: set nvidia_driver_gpu_arch (hopper, ada, ampere, ...)")
        archs.add(arch)
    if len(archs) > 1:
        raise AnsibleFilterError(f"GPUs of several architectures ({', '.join(sorted(archs))}): set nvidia_driver_gpu_arch")
    return archs.pop() if archs else None


CONTAINER_TYPES = ("container", "docker", "podman", "lxc", "systemd-nspawn", "containerd")


def llmhost_in_container(facts):
    """True when gathered facts say this host is a container: it shares its kernel with the machine,
    so kernel settings, modules, headers and reboots are not its own."""
    return facts.get("virtualization_role") == "guest" and facts.get("virtualization_type") in CONTAINER_TYPES


@_guard
def llmhost_os_key(facts):
    """Gathered facts -> the knowledge base's OS key, e.g. debian-12, ubuntu-24.04, rocky-9."""
    return knowledge.os_key(str(facts.get("distribution", "")).lower(), str(facts.get("distribution_version", "")))


@_guard
def llmhost_llama_server_args(plan, model, alias, host, port, api_key_file="", load_mode="auto", numa_pinned=False,
                              overrides=None, help_text=None):
    """A `llmhost plan --json` result and the service's settings -> [[flag, value], ...] for llama-server,
    every flag checked whole against the binary's --help (an unknown one is refused by name)."""
    runtime = plan["runtime"]
    template = flags.chat_template_for(plan["model"].get("arch"), plan["model"].get("chat_template", True))
    return flags.llama_server(runtime["settings"], model=str(model), alias=str(alias), host=str(host), port=int(port),
                              api_key_file=str(api_key_file or "") or None, load_mode=str(load_mode),
                              numa_pinned=bool(numa_pinned), chat_template=template, overrides=dict(overrides or {}),
                              help_text=str(help_text) if help_text else None)


@_guard
def llmhost_vllm_args(settings, alias, host, port, tokenizer="", overrides=None, help_text=None):
    """vLLM settings -> [[flag, value], ...] for `vllm serve MODEL`, checked against `vllm serve --help=all`."""
    return flags.vllm(dict(settings), alias=str(alias), host=str(host), port=int(port), tokenizer=str(tokenizer or "") or None,
                      overrides=dict(overrides or {}), help_text=str(help_text) if help_text else None)


def llmhost_exec_line(argv):
    """argv -> a systemd ExecStart= value (%, $ literal; spaces quoted)."""
    return flags.exec_line([str(a) for a in argv])


@_guard
def llmhost_model_alias(name):
    return flags.model_alias(str(name))


@_guard
def llmhost_merge_docker_daemon(current, runtime_path="nvidia-container-runtime", make_default=False):
    """daemon.json text -> text with the nvidia runtime added, every other key kept."""
    return engine_config.merge_docker_daemon(str(current), str(runtime_path), bool(make_default))


def llmhost_gpu_placements(host_facts):
    """`llmhost facts --json` -> [{address, numa_node, cpus}] in PCI order, for GPUs whose node is known."""
    return [{"address": g["address"], "numa_node": g["numa_node"], "cpus": g.get("cpus")}
            for g in host_facts.get("gpus", []) if g.get("numa_node") is not None]


@_guard
def llmhost_power_limit_violations(csv_lines, limit_w):
    """`nvidia-smi --query-gpu=pci.bus_id,power.min_limit,power.max_limit --format=csv,noheader,nounits`
    lines and a limit in watts -> ['00000000:01:00.0 (100-300 W)', ...] for each GPU whose range excludes it.
    GPUs that report no range ([N/A]) cannot be checked and are not listed."""
    limit = float(limit_w)
    bad = []
    for line in csv_lines:
        fields = [f.strip() for f in str(line).split(",")]
        try:
            low, high = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            continue
        if not low <= limit <= high:
            bad.append(f"{fields[0]} ({low:g}-{high:g} W)")
    return bad


@_guard
def llmhost_newest_cuda(driver):
    cuda = knowledge.newest_cuda_for_driver(parse_driver(str(driver)))
    return cuda.short if cuda else None


@_guard
def llmhost_cuda_min_driver(cuda):
    return str(knowledge.cuda_min_driver(parse_cuda(str(cuda))))


@_guard
def llmhost_cuda_toolkit_plan(os_id, driver, driver_source="distribution", versions=None, source="auto", default="",
                              arch=None, allow_minor=False):
    return install_plans.cuda_toolkit_plan(str(os_id), str(driver), str(driver_source), list(versions or []),
                                           str(source), str(default or ""), arch or None, bool(allow_minor))


@_guard
def llmhost_fabricmanager_plan(os_id, driver_source, branch, driver_version, nvswitches):
    return install_plans.fabricmanager_plan(str(os_id), str(driver_source), branch, driver_version or None,
                                            int(nvswitches))


@_guard
def llmhost_llama_build(build, gpu_count, compute_caps, arch=None, cuda=None, architectures="", cpu_variants=None):
    """The host's GPUs and toolkit -> the llama.cpp build spec: {backend, cpu_variants, cuda_archs, nvcc, host_cxx}."""
    spec = artefact.decide(str(build), int(gpu_count), [str(c) for c in compute_caps or []], arch or None,
                           dict(cuda or {}), str(architectures or ""),
                           None if cpu_variants is None else [str(v) for v in cpu_variants])
    return {"backend": spec.backend, "cpu_variants": spec.cpu_variants, "cuda_archs": spec.cuda_archs,
            "nvcc": spec.nvcc, "host_cxx": spec.host_cxx}


@_guard
def llmhost_gateway_registry(clients):
    """gateway_clients -> {clients_json (by key digest), rate_limited, names}; one error for the first bad entry."""
    return gateway_clients.registry(clients)


class FilterModule:
    def filters(self):
        return {f.__name__: f for f in (llmhost_data, llmhost_recommend, llmhost_install_plan, llmhost_arch_for_pci_ids, llmhost_gpu_devices,
                                                     llmhost_in_container, llmhost_os_key, llmhost_llama_server_args,
                                                     llmhost_vllm_args, llmhost_exec_line, llmhost_model_alias,
                                                     llmhost_merge_docker_daemon, llmhost_power_limit_violations,
                                                     llmhost_gpu_placements,
                                                     llmhost_newest_cuda,
                                                     llmhost_cuda_min_driver, llmhost_cuda_toolkit_plan,
                                                     llmhost_fabricmanager_plan, llmhost_llama_build,
                                                     llmhost_gateway_registry)}
