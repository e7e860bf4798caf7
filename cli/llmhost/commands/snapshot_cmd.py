"""`llmhost snapshot PATH`."""

from __future__ import annotations

import click

from llmhost.host import snapshot as snap


@click.command()
@click.argument("path")
@click.option("--redact", is_flag=True, help="Drop GPU serial numbers and UUIDs.")
@click.option("--model-dir", metavar="DIR", help="Model directory whose disk is recorded.")
def snapshot(path, redact, model_dir):
    """Record what preflight reads on this host into PATH (a directory, or PATH.tar.gz).

    Replay it anywhere with 'llmhost preflight --snapshot PATH'.
    """
    snap.check_target(path)  # before the capture, which takes seconds
    host = snap.capture(model_dir)
    written = snap.write(host, path, redact_ids=redact)
    click.echo(f"llmhost: snapshot of {len(host.files)} files and {len(host.commands)} commands written to {written}")
