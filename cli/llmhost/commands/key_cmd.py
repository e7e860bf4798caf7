"""`llmhost key new NAME` and `llmhost key hash`: keys for the gateway's clients."""

from __future__ import annotations

import json
import re
import sys

import click

from llmhost import knowledge
from llmhost.errors import LlmhostError
from llmhost.gateway import keys


@click.group()
def key():
    """API keys for the TLS gateway's clients (roles/gateway).

    The key is printed once; the inventory keeps only its SHA-256 (gateway_clients), so no file Ansible
    writes, no log and no play output holds a key.
    """


@key.command("new")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: name, key, key_sha256.")
def new(name, as_json):
    """Make a key for client NAME: the key once, and the entry for gateway_clients."""
    pattern = knowledge.load("gateway")["clients"]["name_pattern"]
    if not re.match(pattern, name):
        raise LlmhostError(f"client name {name!r}: expected letters, digits, '.', '_' or '-' "
                           "(1-64, starting with a letter or digit)")
    secret = keys.new_key()
    digest = keys.key_sha256(secret)
    if as_json:
        click.echo(json.dumps({"name": name, "key": secret, "key_sha256": digest}))
        return
    click.echo(f"key for {name} (shown once; give it to the client, keep no copy):")
    click.echo(f"  {secret}")
    click.echo("add to gateway_clients in the inventory (or an Ansible Vault file):")
    click.echo(f"  - name: {name}")
    click.echo(f"    key_sha256: {digest}")


@key.command("hash")
def hash_():
    """Read a key on standard input (never as an argument: those show in ps and shell history) and
    print its SHA-256, for a key made elsewhere."""
    text = sys.stdin.read(4096).strip()
    if not text:
        raise LlmhostError("no key on standard input: expected one key, e.g. 'llmhost key hash < key.txt'")
    click.echo(keys.key_sha256(text))
