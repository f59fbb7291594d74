"""Where a result came from: every result file that benchmarks/ and experiments/ write carries this.

`provenance()` says when and on what a measurement ran: the date, the commit (and whether the
working tree had uncommitted changes), the hardware, the torch version, the full command line
and the load average; `write_result` puts it in a result file beside the figures.

    from provenance import provenance, write_result        # a script in benchmarks/
    from benchmarks.provenance import ...                   # a module run with python -m
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU features that change seqcli's speed: AVX-512, bf16 units, AMX."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx512", "amx")) or f == "avx2")
    except OSError:
        pass
    return []


def accelerator() -> str | None:
    """The CUDA GPU torch sees, if any (None without one, or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """date, commit, dirty tree, hardware, torch, Python, command line and load average, now."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD") or None,
        "dirty": bool(status),
        "hardware": {
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "accelerator": accelerator(),
        },
        "torch": torch_version(),
        "python": platform.python_version(),
        "command": shlex.join(command if command is not None else [sys.executable, *sys.argv]),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(path: Path, figures: dict[str, Any], started: dict[str, Any]) -> None:
    """Write figures as JSON with their provenance: `started` (taken when the measurement began)
    and the load average at the end."""
    record = {"provenance": {**started, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**record, **figures}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
