#!/usr/bin/env bash
# The README's runtime numbers, in one run on this machine after 'make lab':
#   llmhost   the unit llmhost laid down on a lab host (llama-server, planned flags)
#   defaults  the same llama-server binary and model with only -m/--host/--port (llama-server's own defaults),
#             as a transient unit in the same lab host
#   lcpp      llama-cpp-python 0.3.36's server with the flags llmhost's unit had before it served
#             llama-server (portable build: AVX2, and AVX-512 where the CPU has it; --n_ctx 4096 --n_threads 2 --interrupt_requests false
#             --chat_format gemma)
# at 1/4/8/16 users, then this machine's memory bandwidth on all cores and each one's decode as a share
# of the roofline, and llama-bench's own decode (the engine's limit) with the unit's binary and CPU variant.
# Usage: scripts/bench-runtime.sh [lab host] [llmhost port] [bench args...]
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-llmhost-lab-bookworm}
port=${2:-8081}
defaults_port=9081
lcpp_port=9082
CACHE=${LLMHOST_CACHE:-$HOME/.cache/llmhost}
engine=$(command -v podman || command -v docker) || { echo "bench-runtime: no podman or docker" >&2; exit 2; }

exec_start=$("$engine" exec "$host" systemctl show -P ExecStart llmhost-inference)
server=$(grep -oP 'path=\K\S+' <<<"$exec_start")
model=$(grep -oP -- '--model \K\S+' <<<"$exec_start") \
  || { echo "bench-runtime: $host has no llmhost-inference unit serving a model: run 'make lab' first" >&2; exit 2; }
alias=$(grep -oP -- '--alias \K\S+' <<<"$exec_start")
read -r local_model _ < <(bash scripts/lab-model.sh)

# The peer llama-cpp-python: its portable wheel built once per instruction set (about 4 minutes) and a
# virtualenv for it. AVX-512 only where this CPU has it (a build with it dies of SIGILL on an AVX2-only CPU);
# never -march=native (some machines of this kind advertise AMX and fault on it).
avx512=$(grep -qw avx512f /proc/cpuinfo && echo ON || echo OFF)
peer=$CACHE/peers/llama-cpp-python-0.3.36-avx512-$avx512
if [ ! -x "$peer/bin/python" ] || ! "$peer/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
  wheels=$CACHE/wheels/avx512-$avx512
  mkdir -p "$wheels"
  if ! ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "bench-runtime: building the llama-cpp-python 0.3.36 wheel (once, about 4 minutes)" >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=$avx512" \
      .venv/bin/pip wheel -q --no-deps --no-binary llama-cpp-python -w "$wheels" llama-cpp-python==0.3.36 >&2
  fi
  python3 -m venv "$peer"
  "$peer/bin/pip" install -q -c constraints.txt "$(ls "$wheels"/llama_cpp_python-0.3.36-*.whl | head -n1)[server]" >&2
fi

cleanup() {
  "$engine" exec "$host" systemctl stop llmhost-bench-defaults 2>/dev/null || true
  [ -n "${lcpp_pid:-}" ] && kill "$lcpp_pid" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
"$engine" exec "$host" systemd-run --quiet --unit llmhost-bench-defaults --uid llmhost-infer \
  "$server" -m "$model" --host 127.0.0.1 --port "$defaults_port"
"$peer/bin/python" -m llama_cpp.server --model "$local_model" --host 127.0.0.1 --port "$lcpp_port" \
  --n_ctx 4096 --n_threads "$(nproc)" --interrupt_requests false --chat_format gemma >/tmp/llmhost-bench-lcpp.log 2>&1 &
lcpp_pid=$!
for p in "$defaults_port" "$lcpp_port"; do
  for _ in $(seq 90); do curl -sf "http://127.0.0.1:$p/v1/models" >/dev/null && break; sleep 2; done
done
echo "bench-runtime: llmhost  = $(grep -oP 'argv\[\]=\K[^;]*' <<<"$exec_start")(port $port)"
echo "bench-runtime: defaults = $server -m $model --host 127.0.0.1 --port $defaults_port"
echo "bench-runtime: lcpp     = llama_cpp.server --model $local_model --n_ctx 4096 --n_threads $(nproc) --interrupt_requests false --chat_format gemma (port $lcpp_port)"
.venv/bin/llmhost bench "http://127.0.0.1:$port" --compare "http://127.0.0.1:$defaults_port" \
  --compare "http://127.0.0.1:$lcpp_port" --model "$alias" --concurrency 1,4,8,16 --roofline "$local_model" "${@:3}"
echo
echo "bench-runtime: llama-bench in $host (the unit's binary and proven CPU variant, $(nproc) threads):"
"$engine" exec "$host" runuser -u llmhost-infer -- "$(dirname "$server")/llama-bench" -m "$model" -t "$(nproc)" \
  -p 45 -n 64 -r 3 2>/dev/null | grep -E '^\|'
