"""Running seqcli as a separate process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

from seqcli.threads import usable_cores

# Each pytest worker runs one seqcli process at a time: each gets its share of the cores, so
# that the workers together do not ask for more threads than there are cores.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, usable_cores() // WORKERS)
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
# The environment of a user's shell: no thread count set, so seqcli chooses (seqcli.threads).
USER_ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_cli(
    *args: str, input_text: str | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m seqcli ARGS` as a user would, capturing stdout and stderr (this
    worker's share of the cores unless env says otherwise)."""
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
