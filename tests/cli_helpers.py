"""Running seqcli as a separate process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

# Tiny test models run faster on one thread, and a busy 2-core machine makes extra threads thrash.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# As users run it: torch's default thread count (one per core).
DEFAULT_THREADS_ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_cli(
    *args: str, input_text: str | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m seqcli ARGS` as a user would, capturing stdout and stderr (one torch
    thread unless env says otherwise)."""
    result = subprocess.run(
        [sys.executable, "-m", "seqcli", *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV if env is None else env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"seqcli {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
