"""The `llmhost` command line."""

from __future__ import annotations

import sys

import click

from llmhost import __version__
from llmhost.errors import LlmhostError


class Cli(click.Group):
    """Turns an LlmhostError into one line on stderr and exit 2, like click's usage errors."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LlmhostError as exc:
            click.echo(f"llmhost: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmhost")
def cli():
    """Take a bare Linux box with NVIDIA GPUs to a tuned, verified local-LLM host.

    Start with 'llmhost preflight': it reads the host and says what would ruin inference on it.
    """


def _register():
    from llmhost.commands import bench_cmd, compat_cmd, plan_cmd, preflight_cmd, runtime_cmd, snapshot_cmd

    for command in (preflight_cmd.preflight, snapshot_cmd.snapshot, compat_cmd.compat, plan_cmd.plan,
                    bench_cmd.bench, runtime_cmd.runtime):
        cli.add_command(command)


_register()
