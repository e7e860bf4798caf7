#!/usr/bin/env bash
# Tuned vs defaults, as the README reports it: on a lab host after 'make lab', start the same server
# and model with only --model and the chat format (the server's defaults) on a second port, run
# 'llmhost bench' against it and against the unit llmhost laid down, then stop the extra server.
# Usage: scripts/bench-runtime.sh [lab host] [tuned port] [defaults port] [bench args...]
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-llmhost-lab-bookworm}
tuned_port=${2:-8081}
defaults_port=${3:-9081}
engine=$(command -v podman || command -v docker) || { echo "bench-runtime: no podman or docker" >&2; exit 2; }

exec_start=$("$engine" exec "$host" systemctl show -P ExecStart llmhost-inference)
model=$(grep -oP -- '--model \K\S+' <<<"$exec_start") \
  || { echo "bench-runtime: $host has no llmhost-inference unit serving a model: run 'make lab' first" >&2; exit 2; }
chat_format=$(grep -oP -- '--chat_format \S+' <<<"$exec_start" || true)
python=$(grep -oP 'path=\K\S+' <<<"$exec_start")

"$engine" exec "$host" systemctl stop llmhost-bench-defaults 2>/dev/null || true
trap '"$engine" exec "$host" systemctl stop llmhost-bench-defaults 2>/dev/null || true' EXIT
# shellcheck disable=SC2086 # chat_format is a flag and its value
"$engine" exec "$host" systemd-run --quiet --unit llmhost-bench-defaults --uid llmhost-infer \
  "$python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$defaults_port" $chat_format
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$defaults_port/v1/models" >/dev/null && break
  sleep 2
done
echo "bench-runtime: defaults = $python -m llama_cpp.server --model $model $chat_format (port $defaults_port)"
echo "bench-runtime: llmhost  = $(grep -oP 'argv\[\]=\K[^;]*' <<<"$exec_start")(port $tuned_port)"
.venv/bin/llmhost bench "http://127.0.0.1:$defaults_port" --compare "http://127.0.0.1:$tuned_port" "${@:4}"
