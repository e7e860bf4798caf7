#!/usr/bin/env bash
# promtool and node_exporter for the suite, unpacked from the Debian packages the monitoring role
# installs on hosts (no service is installed or started here). Cached under ~/.cache/llmhost/tools;
# prints the directory that holds usr/bin/promtool and usr/bin/prometheus-node-exporter.
set -euo pipefail
die() { echo "llmhost: prometheus tools: $*" >&2; exit 1; }

# Pinned to Debian 12's builds; another release's candidate is taken when these are gone from the archive.
PINS=${LLMHOST_PROMETHEUS_PINS:-"prometheus=2.42.0+ds-5+deb12u1 prometheus-node-exporter=1.5.0-1+b6"}
dir=${LLMHOST_CACHE:-$HOME/.cache/llmhost}/tools/prometheus
stamp="$dir/.pins"

if [ -x "$dir/usr/bin/promtool" ] && [ -x "$dir/usr/bin/prometheus-node-exporter" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PINS" ]; then
  echo "$dir"; exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are needed to fetch Debian's prometheus packages"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
for pin in $PINS; do
  if ! apt-get download -qq "$pin" >/dev/null 2>&1; then
    apt-get download -qq "${pin%%=*}" >/dev/null 2>&1 \
      || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && apt-get download -qq "${pin%%=*}" >/dev/null 2>&1; } \
      || die "'apt-get download ${pin%%=*}' failed: check the Debian mirror in /etc/apt/sources.list"
    echo "llmhost: $pin is gone from the archive; took $(ls "${pin%%=*}"_*.deb)" >&2
  fi
done
rm -rf "$dir.new" && mkdir -p "$dir.new"
for deb in ./*.deb; do dpkg-deb -x "$deb" "$dir.new"; done
"$dir.new/usr/bin/promtool" --version >/dev/null 2>&1 || die "the unpacked promtool does not run"
printf '%s' "$PINS" > "$dir.new/.pins"
rm -rf "$dir" && mv "$dir.new" "$dir"
echo "$dir"
