#!/usr/bin/env bash
# The lab gateway's one client, lab-team: its key is made once on this machine (llmhost key new) and kept
# in ~/.cache/llmhost/lab/lab-team.key (0600) for the README's requests; the inventory gets only the
# SHA-256 this prints. Ansible runs this for both lab hosts at once: the first makes the key under a lock,
# the other waits and reads the same key.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${LLMHOST_CACHE:-$HOME/.cache/llmhost}/lab
key="$dir/lab-team.key"
mkdir -p "$dir" && chmod 0700 "$dir"
exec 9>"$dir/.lab-team.lock"
flock 9
if [ ! -s "$key" ]; then
  new=$(mktemp "$key.XXXXXX")
  .venv/bin/llmhost key new lab-team --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["key"])' > "$new"
  mv "$new" "$key"
fi
flock -u 9
.venv/bin/llmhost key hash < "$key"
