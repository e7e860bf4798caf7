#!/usr/bin/env bash
# The lab gateway's one client, lab-team: its key is made once on this machine (llmhost key new) and kept
# in ~/.cache/llmhost/lab/lab-team.key (0600) for the README's requests; the inventory gets only the
# SHA-256 this prints.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${LLMHOST_CACHE:-$HOME/.cache/llmhost}/lab
key="$dir/lab-team.key"
if [ ! -s "$key" ]; then
  mkdir -p "$dir" && chmod 0700 "$dir"
  (umask 077 && .venv/bin/llmhost key new lab-team --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["key"])' > "$key.new")
  mv "$key.new" "$key"
fi
.venv/bin/llmhost key hash < "$key"
