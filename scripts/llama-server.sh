#!/usr/bin/env bash
# Builds llama.cpp's llama-server (and llama-bench) from the pinned source once, into the artefact
# cache (~/.cache/llmhost/artefacts), and prints the artefact's path. The inference role makes the
# same build on its first run (same id, so this is a cache hit for it); the tests run this server.
# About 8 minutes on 2 cores the first time (cmake and g++ are installed where missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null || ! command -v objdump >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "llmhost: installing cmake, g++ and binutils to build llama-server" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ binutils >/dev/null \
      || { echo "llmhost: llama-server: 'apt-get install cmake g++ binutils' failed" >&2; exit 1; }
  else
    echo "llmhost: llama-server: cmake, a C++ compiler and objdump are needed (apt-get install cmake g++ binutils)" >&2
    exit 1
  fi
fi
exec .venv/bin/llmhost runtime build "$@"
