#!/usr/bin/env bash
# Every Molecule scenario, in two lanes at once: the scenarios that serve the real model (CPU-bound:
# llama-server, its proofs and clients) beside the ones that install packages (network- and disk-bound),
# so the machine's two cores are busy while apt waits. Scenarios use their own container names and ports,
# and none changes what another reads. Each lane's log is printed when the lane ends; the exit status is
# non-zero when any scenario failed, and every scenario's time is listed.
#   LLMHOST_MOLECULE_LANES=1 runs them one after another in one lane; LLMHOST_MOLECULE_CHECK_ONLY=1 only
#   checks that every scenario is in a lane and that the lanes' container names differ.
set -uo pipefail
cd "$(dirname "$0")/.."
# The gateway ends the packages lane: in the serving lane it made that lane the long pole (CI, 2026-12-02:
# 1,852 s against 1,458 s); here the lanes took 1,013 s and 802 s.
serving="inference monitoring"
packages="host_tuning preflight nvidia_driver cuda_toolkit container_toolkit gpu_host gateway"
known=$(ls -d molecule/*/molecule.yml | cut -d/ -f2 | sort | tr '\n' ' ')
listed=$(printf '%s\n' $serving $packages | sort | tr '\n' ' ')
if [ "$known" != "$listed" ]; then
  echo "llmhost: molecule lanes list '$listed' but molecule/ has '$known': put each scenario in one lane" >&2
  exit 2
fi
# Lanes run at once, so a container name may be used in one lane only (a scenario without platforms of
# its own uses the shared default names of .config/molecule/config.yml).
defaults=$(grep -E '^  - name: ' .config/molecule/config.yml | awk '{print $3}')
names_of() { local own; own=$(grep -E '^  - name: ' "molecule/$1/molecule.yml" | awk '{print $3}'); echo "${own:-$defaults}"; }
serving_names=$(for scenario in $serving; do names_of "$scenario"; done | sort -u)
for scenario in $packages; do
  for name in $(names_of "$scenario"); do
    if grep -qx "$name" <<<"$serving_names"; then
      echo "llmhost: molecule scenario '$scenario' uses container name '$name', which the other lane uses too" >&2
      exit 2
    fi
  done
done
[ "${LLMHOST_MOLECULE_CHECK_ONLY:-}" = 1 ] && { echo "llmhost: molecule lanes: scenarios and names check out"; exit 0; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

lane() {  # lane NAME SCENARIO...
  local name=$1; shift
  for scenario in "$@"; do
    local start=$SECONDS
    if molecule test -s "$scenario" --no-command-borders >>"$work/$name.log" 2>&1; then
      echo "$scenario $((SECONDS - start)) ok" >>"$work/$name.times"
    else
      echo "$scenario $((SECONDS - start)) FAILED" >>"$work/$name.times"
    fi
  done
}

if [ "${LLMHOST_MOLECULE_LANES:-2}" = 1 ]; then
  lane all $serving $packages
  lanes="all"
else
  lane serving $serving & serving_pid=$!
  lane packages $packages & packages_pid=$!
  wait $serving_pid $packages_pid
  lanes="serving packages"
fi
status=0
for name in $lanes; do
  echo "==> molecule lane '$name'"
  cat "$work/$name.log"
done
echo "==> molecule scenarios (seconds)"
for name in $lanes; do
  while read -r scenario seconds result; do
    printf '  %-18s %5s  %s  (%s lane)\n' "$scenario" "$seconds" "$result" "$name"
    [ "$result" = ok ] || status=1
  done <"$work/$name.times"
done
exit $status
