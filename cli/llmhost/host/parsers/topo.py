"""`nvidia-smi topo -m`: the GPU rows of the matrix with their CPU and NUMA affinity."""

from __future__ import annotations

from typing import Any

from llmhost.host.parsers import ParseError


def parse(text: str) -> list[dict[str, Any]]:
    """-> [{'gpu': 'GPU0', 'links': {'GPU1': 'NV12', ...}, 'cpu_affinity': '0-23', 'numa_affinity': '0'}]"""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines or "GPU0" not in lines[0]:
        raise ParseError("nvidia-smi topo -m output has no header row naming GPU0")
    header = [h.strip() for h in lines[0].split("\t") if h.strip()]
    rows = []
    for line in lines[1:]:
        if line.startswith("Legend"):
            break
        cells = [c.strip() for c in line.split("\t")]
        if not cells or not cells[0].startswith("GPU"):
            continue
        values = [c for c in cells[1:] if c != ""] if "\t\t" in line else cells[1:]
        row: dict[str, Any] = {"gpu": cells[0], "links": {}}
        for column, value in zip(header, values):
            if column.startswith(("GPU", "NIC")) and column != "GPU NUMA ID":
                row["links"][column] = value
            elif column == "CPU Affinity":
                row["cpu_affinity"] = value
            elif column == "NUMA Affinity":
                row["numa_affinity"] = value
            elif column == "GPU NUMA ID":
                row["gpu_numa_id"] = value
        rows.append(row)
    if not rows:
        raise ParseError("nvidia-smi topo -m output has no GPU rows")
    return rows
