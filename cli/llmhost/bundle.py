"""Build llmhost as one self-contained zipapp, so roles can run the same preflight engine on
managed hosts without installing anything there but Python.

    python -m llmhost.bundle PATH.pyz

The archive holds llmhost and its pure-Python dependencies (click, distro, nvidia-ml-py, PyYAML's
pure part). Entries carry a fixed timestamp, so the same sources give a byte-identical archive and
Ansible's copy reports no change.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGES = ("llmhost", "click", "distro", "pynvml", "yaml")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
MAIN = "import sys\nfrom llmhost.main import cli\nsys.exit(cli())\n"


def _sources(name: str) -> list[tuple[Path, str]]:
    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        root = Path(list(module.__path__)[0])
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".yml", ".json", ".typed"))
        return [(p, f"{name}/{p.relative_to(root).as_posix()}") for p in files if "__pycache__" not in p.parts]
    path = Path(module.__file__)
    return [(path, path.name)]


def build(target: str) -> Path:
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: runs that build at once (Molecule lanes) never write into each other's file.
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    tmp.chmod(0o644)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [(None, "__main__.py")] + [e for name in PACKAGES for e in _sources(name)]
        for source, arcname in entries:
            info = zipfile.ZipInfo(arcname, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, MAIN if source is None else source.read_bytes())
    if out.exists() and out.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        tmp.replace(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m llmhost.bundle PATH.pyz")
    print(build(sys.argv[1]))
