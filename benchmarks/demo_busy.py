"""`make demo` on a quiet machine and beside busy processes: exact match and wall time.

Each row runs the README's demo (`make demo`, its run directory under --work) while COUNT
Python loops spin on a core each, as a second training, a browser or an indexer would. The demo
trains for `train.max_minutes` of configs/dates.toml; recorded are the test set's exact match
(what `make demo` prints), the training's wall time against that budget, and the updates made.

    python benchmarks/demo_busy.py --busy 0 1 --out benchmarks/results/demo-busy.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from busy import busy_processes
from provenance import REPO, provenance, write_result


def demo(count: int, work: Path) -> dict[str, Any]:
    run_dir = work / f"demo-busy{count}"
    with busy_processes(count):
        started = time.monotonic()
        result = subprocess.run(
            ["make", "demo", f"RUN_DIR={run_dir}"], cwd=REPO, capture_output=True, text=True, check=True
        )
        seconds = time.monotonic() - started
    exact = re.search(r"exact match = ([0-9.]+)%", result.stdout)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    budget = tomllib.loads((REPO / "configs" / "dates.toml").read_text())["train"]["max_minutes"] * 60
    record = {
        "busy_processes": count,
        "exact_match": float(exact.group(1)) if exact else None,
        "updates": log[-1]["step"],
        "training_seconds": round(log[-1]["elapsed_seconds"], 1),
        "budget_seconds": budget,
        "demo_seconds": round(seconds, 1),
        "threads_line": next((line for line in result.stderr.splitlines() if "threads" in line), ""),
    }
    print(record, file=sys.stderr, flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "demo-busy")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "demo-busy.json")
    args = parser.parse_args()
    started = provenance()
    rows = [demo(count, args.work) for count in args.busy]
    write_result(args.out, {"rows": rows}, started)
    for r in rows:
        print(
            f"busy {r['busy_processes']}: {r['exact_match']}% exact, {r['updates']} updates, "
            f"training {r['training_seconds']} s of a {r['budget_seconds']:.0f} s budget"
        )


if __name__ == "__main__":
    main()
