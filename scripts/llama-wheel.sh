#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once (about 4 minutes on 2 cores) and caches it; prints its path.
# The runtime role sends this wheel to the lab hosts, and the test virtualenv installs it.
# Built without -march=native and without AMX: a CPU flag is a claim, not a guarantee (this VM
# advertises AMX and faults on it), and a portable build runs on every x86-64 host with AVX2.
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${LLMHOST_CACHE:-$HOME/.cache/llmhost}/wheels
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON"
PIP=${PIP:-python3 -m pip}
wheel=$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "llmhost: installing cmake and g++ to build llama-cpp-python" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null \
        || { echo "llmhost: llama wheel: 'apt-get install cmake g++' failed" >&2; exit 1; }
    else
      echo "llmhost: llama wheel: cmake and a C++ compiler are needed (apt-get install cmake g++)" >&2; exit 1
    fi
  fi
  mkdir -p "$CACHE"
  echo "llmhost: building llama-cpp-python $VERSION (about 4 minutes on 2 cores, once)" >&2
  CMAKE_ARGS="$FLAGS" $PIP wheel -q --no-deps --no-binary llama-cpp-python -w "$CACHE" "llama-cpp-python==$VERSION" >&2 \
    || { echo "llmhost: llama wheel: building llama-cpp-python $VERSION failed (see above)" >&2; exit 1; }
  wheel=$(ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl | head -n1)
fi
echo "$wheel"
