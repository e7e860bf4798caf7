"""`llmhost plan`: will this model fit, and how to run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from llmhost import knowledge
from llmhost.plan import gguf_header, hf_config
from llmhost import plan as engine
from llmhost.errors import LlmhostError
from llmhost.host.facts import Facts, Unavailable
from llmhost.host.hostio import LiveHost, open_snapshot
from llmhost.host.parsers import system
from llmhost.units import parse_count, parse_size

GIB = 1 << 30


def _hardware_from_host(snapshot_path: str | None) -> engine.Hardware:
    host, tmp = open_snapshot(snapshot_path) if snapshot_path else (LiveHost(), None)
    try:
        facts = Facts(host)
        gpus = [g["vram_mib"] << 20 for g in facts.gpus if g.get("vram_mib")]
        bandwidths = [knowledge.gpu_bandwidth(g["pci_device_id"]) for g in facts.gpus if g.get("pci_device_id")]
        try:
            ram = facts.meminfo["MemTotal"] * 1024
        except Unavailable:
            ram = None
        local = next((g.get("local_cpulist") for g in facts.gpus if g.get("local_cpulist")), None)
        try:
            cpus = len(system.cpulist(local)) if local else facts.cpuinfo.count("processor\t:") or None
            cores = max(1, cpus // system.threads_per_core(facts.cpuinfo)) if cpus else None
        except (Unavailable, ValueError):
            cpus = cores = None
        try:
            nodes = max(1, len(facts.numa_nodes))
        except Unavailable:
            nodes = 1
        hw = engine.Hardware(gpus, ram, cpus, nodes, cores, f"snapshot {snapshot_path}" if snapshot_path else "this host")
        if bandwidths and all(bandwidths):
            hw.gpu_bandwidth, hw.gpu_bandwidth_source = min(bandwidths) * 1e9, "the GPU's data sheet"
        return hw
    finally:
        if tmp:
            tmp.cleanup()


def _is_config(path: str) -> bool:
    return path.lower().endswith(".json") or (Path(path).is_dir() and (Path(path) / "config.json").is_file())


def _from_shape(shape, name: str, quant: str, source: str) -> dict:
    weights = engine.weights_by_shape(shape, quant)
    mla = bool(shape.kv_lora_rank)
    return {"source": source, "name": name, "arch": shape.arch, "layers": shape.layers, "heads": shape.heads,
            "hidden": shape.hidden, "ff": shape.ff, **engine.sliding_window(shape.arch, shape.layers, shape.sliding_window),
            "kv_heads": 1 if mla else shape.kv_heads,
            "head_dim": shape.kv_lora_rank + shape.rope_dim if mla else shape.head_dim,
            "head_dim_v": 0 if mla else shape.head_dim, "mla": mla,
            "experts": shape.experts or None, "experts_used": shape.experts_used or None,
            "expert_ff": shape.expert_ff or None, "vocab": shape.vocab, "max_context": shape.context,
            "params": shape.params, "active_params": shape.active_params, "quant": quant, "exact": False,
            "weights": weights}


def _model(gguf_path, model_name, params, quant, arch_numbers) -> dict:
    if gguf_path and _is_config(gguf_path):
        if not quant:
            raise LlmhostError("--quant is required with a config.json (e.g. --quant Q4_K_M)")
        model = _from_shape(hf_config.shape_from_config(gguf_path), Path(gguf_path).parent.name or gguf_path,
                            quant, "config")
        model["safetensors_bytes"] = hf_config.safetensors_bytes(gguf_path)
        return model
    if gguf_path:
        header = gguf_header.read(gguf_path)
        weights = engine.weights_by_gguf(header)
        kv_heads, head_dim_v = (1, 0) if header["mla"] else (header["kv_heads"], header["head_dim_v"])
        return {"source": "gguf", "path": gguf_path, "arch": header["arch"], "name": header["name"],
                "layers": header["layers"], "heads": header["heads"], "kv_heads": kv_heads,
                "head_dim": header["head_dim"], "head_dim_v": head_dim_v, "vocab": header["vocab"],
                "experts": header["experts"], "experts_used": header["experts_used"], "mla": header["mla"],
                "hidden": header["hidden"], "ff": header["ff"], "expert_ff": header["expert_ff"],
                **engine.sliding_window(header["arch"], header["layers"], header["swa_window"]),
                "max_context": header["context"], "file_bytes": header["file_bytes"], "exact": True,
                "chat_template": header["chat_template"], "weights": weights, "shards": header["shards"],
                **({"fetched_bytes": header["fetched_bytes"]} if "fetched_bytes" in header else {})}
    shape = engine.shape_from_model(model_name) if model_name else None
    if not quant:
        raise LlmhostError("--quant is required with --model or --params (e.g. --quant Q4_K_M)")
    if shape:
        return _from_shape(shape, model_name, quant, "shape")
    count = parse_count(params, "--params")
    bpw = knowledge.load("sizing")["measured_bpw"]
    if quant not in bpw:
        raise LlmhostError(f"--quant {quant!r} has no measured bits per weight: expected one of {', '.join(bpw)}, "
                           "or give --model NAME for tensor-by-tensor sizing")
    layers, kv_heads, head_dim, heads = arch_numbers
    if not all((layers, kv_heads, head_dim)):
        # Llama-3-style shape guesses: good enough for the KV cache, stated as an estimate.
        layers = layers or (80 if count > 40e9 else 64 if count > 20e9 else 48 if count > 10e9 else 32)
        kv_heads, head_dim = kv_heads or 8, head_dim or 128
    total = int(count * bpw[quant] / 8)
    per_layer = int(total * 0.97 / layers)
    weights = {"total": total, "per_layer": per_layer, "token_embd": int(total * 0.015), "output": int(total * 0.015)}
    return {"source": "params", "params": count, "quant": quant, "layers": layers, "heads": heads,
            "kv_heads": kv_heads, "head_dim": head_dim, "head_dim_v": head_dim, "vocab": None, "exact": False,
            "weights": weights}


@click.command()
@click.argument("gguf_path", required=False, metavar="[MODEL.gguf|URL|config.json]")
@click.option("--model", "model_name", metavar="NAME", help="A known model shape, e.g. llama-3.1-70b, qwen2.5-72b.")
@click.option("--params", metavar="COUNT", help="Parameter count, e.g. 70B (estimate from measured bits per weight).")
@click.option("--quant", metavar="TYPE", help="Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16, ...")
@click.option("--layers", type=click.IntRange(min=1), help="With --params: transformer layers.")
@click.option("--kv-heads", type=click.IntRange(min=1), help="With --params: KV heads.")
@click.option("--head-dim", type=click.IntRange(min=1), help="With --params: head size.")
@click.option("--heads", type=click.IntRange(min=1), help="With --params: attention heads (for tensor parallel).")
@click.option("--ctx", type=click.IntRange(min=1), default=8192, show_default=True, help="Context per request.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True, help="Concurrent requests.")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True)
@click.option("--gpu-mem", metavar="SIZE[,SIZE...]", help="VRAM per GPU, e.g. 24GiB,24GiB (default: this host).")
@click.option("--ram", metavar="SIZE", help="Host RAM (default: this host).")
@click.option("--snapshot", "snapshot_path", metavar="PATH", help="Take the hardware from a snapshot.")
@click.option("--gpu-bw", metavar="GB/S", type=click.FloatRange(min=0, min_open=True),
              help="Memory bandwidth of one GPU (default: from the GPU's PCI id).")
@click.option("--mem-bw", metavar="GB/S", type=click.FloatRange(min=0, min_open=True),
              help="Host memory read bandwidth on every core (see llmhost bench --roofline).")
@click.option("--measure-bw", is_flag=True, help="Measure this host's memory bandwidth (a few seconds).")
@click.option("--measure-engine", is_flag=True,
              help="Measure llama.cpp's own decode rate for each weight type of the model on this host with "
                   "llama-bench (a synthetic model per type, tens of seconds); the CPU prediction uses it.")
@click.option("--verify", is_flag=True, help="Run the plan with llama-server on this host: its allocations and "
              "prompt and decode speeds beside the prediction (measures the engine first, as --measure-engine).")
@click.option("--server", "server_path", metavar="PATH",
              help="With --verify or --measure-engine: the llama-server binary, llama-bench beside it (default: "
                   "llama-server on PATH, else the newest the inference role installed under /opt/llmhost/llama.cpp).")
@click.option("--json", "as_json", is_flag=True)
def plan(gguf_path, model_name, params, quant, layers, kv_heads, head_dim, heads, ctx, parallel, kv_type,
         gpu_mem, ram, snapshot_path, gpu_bw, mem_bw, measure_bw, measure_engine, verify, server_path, as_json):
    """Size a model (a GGUF file, --model NAME or --params COUNT) for this host and print runtime flags.

    Exit 0 when it can run (in VRAM, across GPUs, or partly or wholly on the CPU within the RAM),
    1 when the part left on the CPU does not fit in RAM, 2 on bad input.
    """
    if sum(bool(x) for x in (gguf_path, model_name, params)) != 1:
        raise LlmhostError("give exactly one of MODEL.gguf, --model NAME or --params COUNT")
    if verify and (not gguf_path or "://" in gguf_path or snapshot_path):
        raise LlmhostError("--verify runs a local MODEL.gguf on this host: give its path (not a URL, --model, "
                           "--params or --snapshot)")
    if measure_engine and snapshot_path:
        raise LlmhostError("--measure-engine measures this host's llama.cpp: it cannot describe a --snapshot's host "
                           "(give that host's --mem-bw, or run plan there)")
    measure_engine = measure_engine or verify
    measure_bw = measure_bw or (measure_engine and not mem_bw)
    model = _model(gguf_path, model_name, params, quant, (layers, kv_heads, head_dim, heads))
    if gpu_mem is not None or ram is not None:
        gpus = _gpu_sizes(gpu_mem) if gpu_mem is not None else []
        hw = engine.Hardware(gpus, parse_size(ram, "--ram") if ram else None, source="given")
        if ram is None:
            # Unknown is not "enough": the RAM comes from this host (or the snapshot) when not given.
            host = _hardware_from_host(snapshot_path)
            hw.ram, hw.cpus, hw.cores, hw.numa_nodes = host.ram, host.cpus, host.cores, host.numa_nodes
            hw.source = f"given GPUs; RAM of {host.source}"
    else:
        hw = _hardware_from_host(snapshot_path)
    if gpu_bw:
        hw.gpu_bandwidth, hw.gpu_bandwidth_source = gpu_bw * 1e9, "given"
    if mem_bw:
        hw.cpu_bandwidth, hw.cpu_bandwidth_source = mem_bw * 1e9, "given"
    elif measure_bw:
        from llmhost.runtime import membw

        measured = membw.read_bandwidth()
        hw.cpu_bandwidth = measured["bytes_per_s"]
        hw.cpu_bandwidth_source = f"measured on {measured['workers']} CPUs"
    result = engine.plan(model, hw, ctx, parallel, kv_type)
    if measure_engine and result["speed"].get("cpu_bytes_per_token"):
        result = _with_engine_rates(model, hw, result, server_path, (ctx, parallel, kv_type))
    if verify:
        from llmhost.runtime import verify as check

        result["verify"] = check.run(result, gguf_path, server_path)
    # Partial offload and CPU-only plans still run; only a CPU part larger than the RAM does not.
    fits = result["fit"]["ram_ok"]
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(_text(result))
    sys.exit(0 if fits else 1)


def _gpu_sizes(given: str) -> list[int]:
    items = [item.strip() for item in given.split(",")]
    if not all(items):
        raise LlmhostError(f"--gpu-mem {given!r}: expected one size per GPU separated by commas, e.g. 24GiB,24GiB "
                           "(leave it out for a host without GPUs)")
    return [parse_size(item, "--gpu-mem") for item in items]


def _with_engine_rates(model: dict, hw, result: dict, server_path: str | None, sizing: tuple) -> dict:
    """The plan again, its CPU part predicted from llama.cpp's measured rate for each weight type."""
    from llmhost.runtime import engine_rates, verify as check

    threads = result["runtime"]["settings"]["threads"]
    types = list((model["weights"].get("types") or {}))
    if not types:
        raise LlmhostError("--measure-engine needs the model's weight types: give a GGUF, a config.json or --model")
    found = engine_rates.rates(check.find_server(server_path), types, threads,
                               shape=engine_rates.shape_like(model.get("hidden"), model.get("ff")))
    hw.cpu_rates = {t: r["bytes_per_s"] for t, r in found.items() if "bytes_per_s" in r}
    hw.cpu_prompt_flops = {t: r["prompt_flops"] for t, r in found.items() if "prompt_flops" in r}
    hw.cpu_rates_source = f"measured by llama-bench on {threads} threads"
    again = engine.plan(model, hw, *sizing)
    again["engine_rates"] = found
    return again


def _gib(value) -> str:
    return f"{value / GIB:.2f} GiB"


def _text(r: dict) -> str:
    m, b, f = r["model"], r["bytes"], r["fit"]
    name = m.get("name") or m.get("path") or f"{m.get('params', 0) / 1e9:.1f}B"
    if m.get("experts") and m.get("active_params"):
        name += (f", MoE: {m['params'] / 1e9:.1f}B parameters, {m['active_params'] / 1e9:.1f}B active "
                 f"({m['experts_used']} of {m['experts']} experts)")
    how = {"gguf": "exact, from the GGUF header", "shape": "tensor by tensor, llama.cpp quant rules",
           "config": "from config.json, tensor by tensor, llama.cpp quant rules",
           "params": "estimate from measured bits per weight (+/- 7%)"}[m["source"]]
    if m.get("fetched_bytes") is not None:
        how += (f"; {m['fetched_bytes']:,} of {m['file_bytes']:,} bytes fetched "
                f"({100 * m['fetched_bytes'] / m['file_bytes']:.2f} %)")
    if m.get("shards", 1) > 1:
        how += f"; {m['shards']} shards"
    gpus = ", ".join(_gib(g) for g in r["host"]["gpus"]) or "none"
    lines = [
        f"model      {name} ({m.get('arch') or '?'}, {m['layers']} layers){' ' + m['quant'] if m.get('quant') else ''}",
        f"weights    {_gib(b['weights'])}  ({how})",
        f"KV cache   {_gib(b['kv_cache'])}  ({r['context']} ctx x {r['parallel']} parallel, {r['kv_type']})",
        f"compute    {_gib(b['compute'])}   overhead {_gib(b['overhead_per_gpu'])} per GPU",
        f"hardware   GPUs: {gpus}; RAM: {_gib(r['host']['ram']) if r['host']['ram'] else '?'} ({r['host']['source']})",
        f"verdict    {f['verdict']}: {f['gpu_layers']}/{m['layers']} layers on {f['gpus_needed']} GPU(s)"
        + (f", the experts of {f['cpu_moe_layers']} layers in RAM" if f.get("cpu_moe_layers") else "")
        + (f", VRAM needed {_gib(f['vram_needed'])}" if f.get("vram_needed") else ""),
        f"RAM        {_gib(r['ram_needed'])} needed{'' if f['ram_ok'] else ' - MORE THAN THIS HOST HAS'}; "
        f"disk {_gib(r['disk_needed'])}; 2 MiB huge pages for the CPU part: {r['hugepages_2m']}",
        f"llama.cpp  llama-server {' '.join(r['runtime']['llama_cpp']['flags'])}",
    ]
    if "vllm" in r["runtime"]:
        lines.append(f"vLLM       vllm serve {' '.join(r['runtime']['vllm']['flags'])}")
        if r["runtime"]["vllm"].get("note"):
            lines.append(f"           {r['runtime']['vllm']['note']}")
    lines.append(f"recommended runtime: {r['runtime']['recommended']}")
    speed = r["speed"]
    lines.append(f"decode     {speed['decode_tokens_per_s']} tok/s predicted for one request, "
                 f"{speed['decode_ceiling_tokens_per_s']} the memory's ceiling ({speed['basis']})"
                 if speed["decode_tokens_per_s"] else f"decode     not predicted: {speed['basis']}")
    lines.append(f"prompt     {speed['prompt_tokens_per_s']} tok/s predicted ({speed['prompt_basis']})"
                 if speed.get("prompt_tokens_per_s") else f"prompt     {speed.get('prompt_basis', 'not predicted')}")
    failed = {t: row["error"] for t, row in r.get("engine_rates", {}).items() if "error" in row}
    lines += [f"warning    llama-bench could not measure {t} ({e}): it is predicted from the bandwidth"
              for t, e in failed.items()]
    lines += [f"warning    {w}" for w in r["warnings"]]
    if "verify" in r:
        v = r["verify"]
        lines.append(f"verify     llama-server measured vs predicted ({v['server']}):")
        for key, label in (("weights", "weights"), ("kv_cache", "KV cache"), ("compute", "compute")):
            lines.append(f"  {label:9} {_gib(v['measured'][key])} measured, {_gib(v['predicted'][key])} predicted"
                         + (f" ({v['ratio'][key]:.2f}x)" if v["ratio"][key] else ""))
        for key, label in (("decode_tokens_per_s", "decode"), ("prompt_tokens_per_s", "prompt")):
            lines.append(f"  {label:9} {v['measured'][key]} tok/s measured, {v['predicted'][key]} predicted"
                         + (f" ({v['ratio'][key]:.2f}x)" if v["ratio"].get(key) else ""))
    return "\n".join(lines)
