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
            click.echo("llmhost: error: " + " ".join(str(exc).split("\n")), err=True)
            sys.exit(2)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmhost")
def cli():
    """Take a bare Linux box with NVIDIA GPUs to a tuned, verified local-LLM host.

    Start with 'llmhost preflight': it reads the host and says what would ruin inference on it.
    """


def _refuse_empty(param: click.Parameter) -> None:
    """An option given an empty value ('--snapshot ""') is a mistake, not 'not given': say so."""
    inner = param.callback

    def callback(ctx, this, value):
        values = value if isinstance(value, tuple) else (value,)
        given = ctx.get_parameter_source(this.name) == click.core.ParameterSource.COMMANDLINE
        if given and any(v == "" for v in values):
            raise click.BadParameter("is empty: give a value or leave the option out")
        return inner(ctx, this, value) if inner else value

    param.callback = callback


def _guard_options(command: click.Command) -> None:
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag and isinstance(param.type, (click.types.StringParamType, click.Path)):
            _refuse_empty(param)
    for sub in getattr(command, "commands", {}).values():
        _guard_options(sub)


def _register():
    from llmhost.commands import (bench_cmd, compat_cmd, facts_cmd, key_cmd, operate_cmd, plan_cmd, preflight_cmd,
                                  runtime_cmd, snapshot_cmd)

    for command in (preflight_cmd.preflight, facts_cmd.facts, snapshot_cmd.snapshot, compat_cmd.compat, plan_cmd.plan,
                    bench_cmd.bench, runtime_cmd.runtime, operate_cmd.exporter, operate_cmd.thermal_guard_cmd, key_cmd.key):
        _guard_options(command)
        cli.add_command(command)


_register()
