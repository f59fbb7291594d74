"""A process's memory as Linux reports it in /proc/PID/status, for the benchmarks that watch one."""

from __future__ import annotations

from pathlib import Path


def memory_mib(pid: int, field: str = "VmRSS") -> float | None:
    """FIELD of the process's status in MiB: VmRSS (resident now) or VmHWM (its peak so far);
    None once the process has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
