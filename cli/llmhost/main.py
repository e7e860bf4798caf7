"""The `llmhost` command line."""

from __future__ import annotations

import importlib
import sys

import click

from llmhost import __version__
from llmhost.errors import LlmhostError


# Each command's module is imported when that command runs: the roles start the engine several times per
# host and run, and importing every command (plan, bench, compat ...) would cost each start ~0.5 s.
COMMANDS = {
    "preflight": "preflight_cmd:preflight", "facts": "facts_cmd:facts", "snapshot": "snapshot_cmd:snapshot",
    "compat": "compat_cmd:compat", "plan": "plan_cmd:plan", "bench": "bench_cmd:bench", "runtime": "runtime_cmd:runtime",
    "exporter": "operate_cmd:exporter", "thermal-guard": "operate_cmd:thermal_guard_cmd", "key": "key_cmd:key",
}


class Cli(click.Group):
    """Loads commands on first use, and turns an LlmhostError into one line on stderr and exit 2, like
    click's usage errors."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(f"llmhost.commands.{module}"), attribute)
        if not getattr(command, "_llmhost_guarded", False):
            _guard_options(command)
            command._llmhost_guarded = True
        return command

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
