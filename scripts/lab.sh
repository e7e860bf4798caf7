#!/usr/bin/env bash
# The README's main job. 'up': prepare everything (virtualenv, container engine, images), start the
# lab containers and converge site.yml on them. 'down': remove the lab containers.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-up}
case "$action" in
  up)
    bash scripts/venv.sh
    bash scripts/container-engine.sh
    bash scripts/build-images.sh bookworm trixie
    bash scripts/llama-server.sh >/dev/null
    export PATH="$PWD/.venv/bin:$PATH"
    bash scripts/lab-key.sh >/dev/null
    ansible-playbook playbooks/lab.yml -i inventory/lab
    ansible-playbook site.yml -i inventory/lab "${@:2}"
    echo
    echo "llmhost: lab converged; Gemma 3 270M answers on each lab host:"
    echo "  curl -s http://127.0.0.1:8081/v1/chat/completions -H 'Content-Type: application/json' \\"
    echo "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Say hello\"}], \"max_tokens\": 32}'"
    echo "  (llmhost-lab-bookworm on port 8081, llmhost-lab-trixie on 8082)"
    echo "llmhost: through the TLS gateway (client lab-team; its key is in ~/.cache/llmhost/lab/lab-team.key):"
    echo "  curl -s --cacert <(podman exec llmhost-lab-bookworm cat /etc/nginx/llmhost/tls.crt) \\"
    echo "       -H \"Authorization: Bearer \$(cat ~/.cache/llmhost/lab/lab-team.key)\" https://localhost:8443/v1/models"
    echo "  (trixie on 8444; the audit log: podman exec llmhost-lab-bookworm tail /var/log/llmhost/gateway-audit.log)"
    echo "llmhost: measure it:                    .venv/bin/llmhost bench http://127.0.0.1:8081 --model gemma-3-270m-q4_k_m"
    echo "llmhost: against the peers (README):    bash scripts/bench-runtime.sh"
    echo "llmhost: inspect a host:                podman exec -it llmhost-lab-bookworm bash"
    echo "llmhost: run preflight there:           podman exec llmhost-lab-bookworm cat /etc/ansible/facts.d/llmhost_preflight_verify.fact"
    echo "llmhost: tear the lab down:             make lab-down"
    ;;
  down)
    bash scripts/venv.sh
    .venv/bin/ansible-playbook playbooks/lab.yml -i inventory/lab -e lab_state=absent
    ;;
  *) echo "usage: scripts/lab.sh up|down [ansible-playbook args]" >&2; exit 2 ;;
esac
