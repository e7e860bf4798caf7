#!/usr/bin/env bash
# Installs and configures a container engine able to run systemd in privileged containers on a
# Debian host like the dev/CI machines (Firecracker VM, cgroup v1 hybrid, no CAP_SYS_RESOURCE).
# Idempotent: a second run changes nothing. Writes a drop-in, never the user's containers.conf.
set -euo pipefail
die() { echo "llmhost: container engine: $*" >&2; exit 1; }

DROPIN=/etc/containers/containers.conf.d/50-llmhost.conf

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || die "podman, runc and debootstrap are missing and installing them needs root: run 'sudo apt-get install podman runc debootstrap'"
  command -v apt-get >/dev/null || die "podman, runc and debootstrap are missing and this is not a Debian-like host: install them with your package manager"
  echo "llmhost: installing podman, runc, debootstrap from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "'apt-get update' failed: check the Debian mirror in /etc/apt/sources.list"
  apt-get install -y -qq podman runc debootstrap >/dev/null || die "'apt-get install podman runc debootstrap' failed"
fi

# crun 1.8 refuses cgroup v1 hybrid hosts and the default rlimits need CAP_SYS_RESOURCE, which this
# kind of VM lacks: pin runc and rlimits below the VM's hard limits.
want='[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]

[engine]
runtime = "runc"'
if [ ! -f "$DROPIN" ] || [ "$(cat "$DROPIN")" != "$want" ]; then
  [ "$(id -u)" = 0 ] || die "$DROPIN needs writing and that needs root"
  mkdir -p "$(dirname "$DROPIN")"
  printf '%s\n' "$want" > "$DROPIN"
  echo "llmhost: wrote $DROPIN"
fi

podman info >/dev/null 2>&1 || die "'podman info' fails: run it by hand to see why (rootful podman is expected)"
echo "llmhost: container engine ready: $(podman --version)"
