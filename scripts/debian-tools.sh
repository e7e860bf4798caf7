#!/usr/bin/env bash
# Debian's own builds of the servers the roles install on hosts, unpacked for the suite (nothing is
# installed or started here), cached under ~/.cache/llmhost/tools/SET. Prints the directory that holds
# the set's usr/.
#   scripts/debian-tools.sh prometheus   promtool and node_exporter (the monitoring role's packages)
#   scripts/debian-tools.sh nginx        nginx with its njs module (the gateway role's packages)
set -euo pipefail
die() { echo "llmhost: debian tools: $*" >&2; exit 1; }

set_name=${1:-}
# Pinned to Debian 12's builds; another release's candidate is taken when these are gone from the archive.
case "$set_name" in
  prometheus)
    PINS=${LLMHOST_PROMETHEUS_PINS:-"prometheus=2.42.0+ds-5+deb12u1 prometheus-node-exporter=1.5.0-1+b6"}
    CHECK="usr/bin/promtool --version" ;;
  nginx)
    PINS=${LLMHOST_NGINX_PINS:-"nginx=1.22.1-9+deb12u9 nginx-common=1.22.1-9+deb12u9 libnginx-mod-http-js=0.7.9-2"}
    CHECK="usr/sbin/nginx -v" ;;
  *) die "unknown set '$set_name': expected prometheus or nginx" ;;
esac
dir=${LLMHOST_CACHE:-$HOME/.cache/llmhost}/tools/$set_name
stamp="$dir/.pins"

if [ "$(cat "$stamp" 2>/dev/null)" = "$PINS" ] && (cd "$dir" && $CHECK) >/dev/null 2>&1; then
  echo "$dir"; exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are needed to fetch Debian's $set_name packages"
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
(cd "$dir.new" && $CHECK) >/dev/null 2>&1 || die "the unpacked $set_name packages do not run ($CHECK)"
printf '%s' "$PINS" > "$dir.new/.pins"
rm -rf "$dir" && mv "$dir.new" "$dir"
echo "$dir"
