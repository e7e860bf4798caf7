"""`llmhost preflight` and its options."""

from __future__ import annotations

import sys

import click

from llmhost.checks import preflight as engine
from llmhost.checks import report
from llmhost.checks import catalogue
from llmhost.host.hostio import LiveHost, open_snapshot
from llmhost.units import parse_size
from llmhost import atomic


@click.command()
@click.option("--snapshot", "snapshot_path", metavar="PATH", help="Replay a snapshot (directory or .tar.gz) instead of reading this host.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "prometheus"]), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--skip", multiple=True, metavar="ID", help="Do not run this check (repeatable).")
@click.option("--only", multiple=True, metavar="ID", help="Run only these checks (repeatable).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--model-dir", metavar="DIR", help="Where models will live (storage.model_disk). Default /var/lib/llmhost/models.")
@click.option("--fixed-model-dir", is_flag=True,
              help="Judge --model-dir only; do not name a better local disk for models.")
@click.option("--model-size", metavar="SIZE", help="Planned model size, e.g. 40GiB, checked against free space.")
@click.option("--output", metavar="FILE", help="Write the report to FILE (atomically: a textfile collector never "
              "reads half of it) instead of standard output.")
@click.option("--list", "list_checks", is_flag=True, help="List the check ids and exit.")
def preflight(snapshot_path, fmt, as_json, skip, only, strict, model_dir, fixed_model_dir, model_size, output,
              list_checks):
    """Check this host (or a snapshot of one) for everything that ruins local inference.

    Exit 0 when nothing failed, 1 when a check failed (or warned, with --strict), 2 on usage errors
    or an unreadable snapshot.
    """
    if list_checks:
        for check in catalogue().values():
            click.echo(f"{check.id:24} {check.title}")
        return
    size = parse_size(model_size, "--model-size") if model_size else None
    if snapshot_path:
        host, tmp = open_snapshot(snapshot_path)
        source = f"snapshot {snapshot_path}"
    else:
        host, tmp, source = LiveHost(**({"model_dir": model_dir} if model_dir else {})), None, "live"
    try:
        result = engine.run(host, source=source, only=only, skip=skip, model_dir=model_dir, model_bytes=size,
                            model_dir_fixed=fixed_model_dir)
    finally:
        if tmp:
            tmp.cleanup()
    rendered = report.render(result, "json" if as_json else fmt, sys.stdout if not output else None)
    if output:
        atomic.write_text(output, rendered, "--output")
    else:
        click.echo(rendered, nl=False)
    sys.exit(result.exit_code(strict))
