"""Running seqcli as a separate process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

# Tiny test models run faster on one thread, and a busy 2-core machine makes extra threads thrash.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(
    *args: str, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `python -m seqcli ARGS` as a user would, capturing stdout and stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "seqcli", *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"seqcli {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
