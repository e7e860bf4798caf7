"""`llmhost exporter` and `llmhost thermal-guard`: the two long-running services of a served host."""

from __future__ import annotations

import math
import re
import signal
import sys

import click

from llmhost.errors import LlmhostError
from llmhost.host.facts import Facts
from llmhost.host.hostio import LiveHost, open_snapshot
from llmhost.operate import exporter as exporter_mod
from llmhost.operate import gpu_metrics, thermal_guard, traces


def _listen(value: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:\[([0-9A-Fa-f:]+)\]|([0-9A-Za-z.-]+)):(\d{1,5})", value or "")
    if not match or not 0 < int(match.group(3)) < 65536:
        raise click.BadParameter(f"{value!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:9835", param_hint="--listen")
    return match.group(1) or match.group(2), int(match.group(3))


def _finite(ctx, param, value):
    # The guard's own settings check themselves (thermal_guard.Settings.check); the interval is not one.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: expected a finite number")
    return value


def _host_factory(snapshot_path: str | None):
    if not snapshot_path:
        return LiveHost, None
    host, tmp = open_snapshot(snapshot_path)
    return (lambda: host), tmp


@click.command()
@click.option("--listen", default="127.0.0.1:9835", show_default=True, metavar="ADDRESS:PORT",
              help="Where Prometheus scrapes /metrics (loopback unless told otherwise).")
@click.option("--model-server", metavar="URL", help="Probe this model server's /health on each scrape.")
@click.option("--snapshot", "snapshot_path", metavar="PATH", help="Serve a snapshot's GPU readings instead of "
              "this host's (demonstrations, tests).")
@click.option("--once", is_flag=True, help="Print one scrape and exit.")
def exporter(listen, model_server, snapshot_path, once):
    """Serve the GPUs' metrics (NVML, else nvidia-smi) and the model server's readiness to Prometheus.

    For hosts without NVIDIA's DCGM exporter; temperatures, power, clocks, utilisation, memory, PCIe
    link and replays, clocks-event reasons, ECC, row remapping and Xid events from the kernel log.
    """
    address, port = _listen(listen)
    if model_server:
        model_server = exporter_mod.check_url(model_server)
    factory, tmp = _host_factory(snapshot_path)
    try:
        if once:
            click.echo(exporter_mod.scrape(factory, model_server), nl=False)
            return
        # systemctl stop sends SIGTERM: leave through `finally`, so an unpacked snapshot is removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            exporter_mod.serve(address, port, factory, model_server)
        except OSError as exc:
            raise LlmhostError(f"--listen {listen}: {exc.strerror or exc}") from None
    finally:
        if tmp:
            tmp.cleanup()


@click.command("thermal-guard")
@click.option("--threshold", type=click.FloatRange(40, 110), metavar="CELSIUS",
              help="Step in at this temperature (default: preflight's warning threshold, 85 °C).")
@click.option("--hysteresis", type=click.FloatRange(0, 60, min_open=True), metavar="CELSIUS",
              help="Give power back only this far below the threshold.")
@click.option("--hold", type=click.FloatRange(0, 3600), metavar="SECONDS", help="Hot this long before each step down.")
@click.option("--cool", type=click.FloatRange(0, 86400), metavar="SECONDS", help="Cool this long before each step up.")
@click.option("--step", type=click.FloatRange(0, 1, min_open=True), metavar="FRACTION",
              help="One step as a fraction of the card's power range.")
@click.option("--interval", type=click.FloatRange(0.5, 600), callback=_finite, default=5.0, show_default=True, metavar="SECONDS")
@click.option("--textfile-dir", metavar="DIR", help="Write llmhost_thermal_guard.prom here (node_exporter).")
@click.option("--state-file", metavar="FILE", help="Remember the limits to give back across restarts.")
@click.option("--dry-run", is_flag=True, help="Decide and log, change nothing.")
@click.option("--once", is_flag=True, help="One reading, then exit.")
@click.option("--trace", "trace_path", metavar="FILE", help="Replay a recorded nvidia-smi log (--query-gpu CSV or "
              "dmon) and print what the guard would have done; changes nothing.")
@click.option("--trace-limits", metavar="MIN,LIMIT,MAX",
              help="Power range in watts for a trace that does not record it, e.g. 100,300,300.")
def thermal_guard_cmd(threshold, hysteresis, hold, cool, step, interval, textfile_dir, state_file, dry_run, once,
                      trace_path, trace_limits):
    """Hold a hot GPU below its power limit until it cools, then give the power back.

    Each change is one JSON line on standard output (the journal); never below the card's minimum.
    """
    settings = thermal_guard.Settings.from_knowledge(threshold_c=threshold, hysteresis_c=hysteresis, hold_s=hold,
                                                     cool_s=cool, step_ratio=step)
    if trace_path:
        samples = traces.load(trace_path, traces.parse_limits(trace_limits) if trace_limits else None)
        for record in traces.replay(settings, samples):
            click.echo(record)
        return
    if trace_limits:
        raise click.BadParameter("only with --trace", param_hint="--trace-limits")

    def read():
        gpus, _ = gpu_metrics.gpu_records(Facts(LiveHost()))
        return gpus

    thermal_guard.run(settings, read, interval, textfile_dir, dry_run, lambda line: (click.echo(line),
                      sys.stdout.flush()), iterations=1 if once else None, state_file=state_file)
