#!/usr/bin/env bash
# Builds systemd-capable Debian base images with debootstrap from Debian's archive and imports them
# into podman as localhost/llmhost-debian:SUITE. An image is rebuilt only when this recipe changes:
# the recipe's hash is stored as a label and compared on each run.
#   usage: scripts/build-images.sh [SUITE...]      (default: bookworm trixie)
set -euo pipefail
die() { echo "llmhost: image build: $*" >&2; exit 1; }

MIRROR=${LLMHOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-apt,systemd,systemd-sysv,sudo,procps,dbus,ca-certificates,gpg,kmod
recipe_hash=$( (cat "$0"; echo "$MIRROR") | sha256sum | cut -c1-16)
suites=("$@"); [ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

for suite in "${suites[@]}"; do
  case "$suite" in bookworm|trixie|bullseye) ;; *) die "unknown suite '$suite': expected bookworm, trixie or bullseye";; esac
  image=localhost/llmhost-debian:$suite
  have=$(podman image inspect --format '{{ index .Labels "llmhost.recipe" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$recipe_hash" ]; then echo "llmhost: $image is up to date (recipe $recipe_hash)"; continue; fi

  start=$SECONDS
  root=$(mktemp -d /var/tmp/llmhost-rootfs-$suite.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "llmhost: debootstrap $suite from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=$PACKAGES "$suite" "$root" "$MIRROR" > "$root.log" 2>&1 \
    || die "debootstrap $suite failed: see $root.log (is $MIRROR reachable?)"
  rm -f "$root.log"
  # Sources stay as debootstrap writes them (main only), like a fresh install: the roles add what they need.
  # An image's apt lists must look stale, or 'apt: cache_valid_time' skips the update and finds nothing.
  rm -rf "$root"/var/lib/apt/lists/* && touch -d @0 "$root/var/lib/apt/lists"
  # No kernel modules can be loaded inside a container; units that try only fail the boot.
  for unit in systemd-modules-load.service systemd-udevd.service systemd-udev-trigger.service \
              getty@tty1.service console-getty.service systemd-firstboot.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  echo "llmhost-lab" > "$root/etc/hostname"
  rm -f "$root/etc/machine-id"; : > "$root/etc/machine-id"
  tar -C "$root" -c . | podman import \
      --change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3' \
      --change "LABEL llmhost.recipe=$recipe_hash" - "$image" >/dev/null 2>&1 \
    || die "podman import of $suite failed: check 'podman info'"
  rm -rf "$root"; trap - EXIT
  echo "llmhost: built $image in $((SECONDS - start)) s"
done
