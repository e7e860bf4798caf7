#!/usr/bin/env bash
# Creates .venv with llmhost and its pinned test tools, and unpacks the Ansible collections llmhost
# uses from the 'ansible' wheel on PyPI (Galaxy may be unreachable) into .venv/collections.
# Re-running is cheap: it reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "llmhost: venv: $*" >&2; exit 1; }
VENV=${LLMHOST_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.llmhost-stamp"
want=$(cat pyproject.toml constraints.txt "$0" | sha256sum | cut -c1-16)

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is $("$PY" -V 2>&1); llmhost needs Python >= 3.11"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "'$PY -m venv $VENV' failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e '.[test]' \
  || die "pip install of the pinned dependencies failed: see the pip output above"

# Collections: ansible.posix, community.general, containers.podman from the pinned 'ansible' wheel.
collections="$VENV/collections/ansible_collections"
if [ ! -d "$collections/containers/podman" ]; then
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -c constraints.txt -d "$tmp" ansible \
    || die "could not download the 'ansible' wheel that carries the collections"
  mkdir -p "$collections"
  "$VENV/bin/python" - "$tmp"/ansible-*.whl "$collections" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
keep = ("ansible_collections/ansible/posix/", "ansible_collections/community/general/",
        "ansible_collections/containers/podman/")
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(keep):
            archive.extract(name, dest.rsplit("/ansible_collections", 1)[0])
PY
  rm -rf "$tmp"
fi
echo "$want" > "$stamp"
echo "llmhost: virtualenv ready at $VENV"
