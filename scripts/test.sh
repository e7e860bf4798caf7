#!/usr/bin/env bash
# The README's test command: from a clean clone, installs what it needs and runs every stage:
# lint (yamllint, ansible-lint production), pytest, every Molecule scenario. Prints a timing summary.
#   LLMHOST_STAGES="lint pytest"  runs a subset (setup always runs).
set -uo pipefail
cd "$(dirname "$0")/.."
stages=${LLMHOST_STAGES:-"lint pytest molecule"}
declare -a summary failures=()
failed=0

stage() {  # stage NAME COMMAND...
  local name=$1; shift
  local start=$SECONDS
  echo "==> $name"
  if "$@"; then
    summary+=("$(printf '%-10s %5ss  ok' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '%-10s %5ss  FAILED' "$name" $((SECONDS - start)))")
    failed=1
  fi
}

lint() {
  yamllint --strict . && ansible-lint --profile production --strict
}

pytest_stage() {  # the failing tests' names go into the summary, which is what a CI log's tail shows
  local log; log=$(mktemp)
  pytest -rfE 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  mapfile -t failures < <(grep -E '^(FAILED|ERROR) ' "$log" | cut -c1-160)
  rm -f "$log"
  return "$rc"
}

setup() {
  bash scripts/venv.sh && bash scripts/container-engine.sh && bash scripts/build-images.sh bookworm trixie \
    && bash scripts/llama-server.sh >/dev/null && bash scripts/debian-tools.sh prometheus >/dev/null && bash scripts/debian-tools.sh nginx >/dev/null
}

stage setup setup
if [ "$failed" = 0 ]; then
  export PATH="$PWD/.venv/bin:$PATH"
  for s in $stages; do
    case "$s" in
      lint) stage lint lint ;;
      pytest) stage pytest pytest_stage ;;
      molecule) stage molecule bash scripts/molecule-lanes.sh ;;
      *) echo "llmhost: unknown stage '$s': expected lint, pytest or molecule" >&2; exit 2 ;;
    esac
  done
fi

echo
echo "==> timing"
printf '%s\n' "${summary[@]}"
[ ${#failures[@]} = 0 ] || printf '  %s\n' "${failures[@]}"
exit $failed
