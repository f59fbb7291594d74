"""Memory over training time: `seqcli train` on a recipe, its resident memory watched throughout.

Each row trains the recipe for --minutes as a user would (seqcli's own thread choice), one row
after the other, while this script samples the process's resident memory (VmRSS) every
--every seconds and notes it at each evaluation (when log.jsonl gains a line). Flat memory
means the last evaluation's figure stays close to the first's.

Rows: `seqcli`, as it runs by default (oneDNN's kernel cache bounded to 16 shapes), and
`onednn-default`, the same with ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024, oneDNN's own default.

    python benchmarks/train_memory.py --data ../shared/data/multi30k --minutes 30 \\
        --out benchmarks/results/train-memory-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from process_memory import memory_mib
from provenance import REPO, provenance, write_result
from shared_data import shared_data

ROWS = {"seqcli": {}, "onednn-default": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}}


def watch(
    command: list[str], env: dict[str, str], log_file: Path, stderr_file: Path, every: float
) -> dict[str, Any]:
    """Run the command (its stderr to STDERR_FILE), sampling its resident memory; returns the
    samples and, per evaluation, the memory when LOG_FILE gained its line."""
    samples: list[tuple[float, float]] = []
    at_evaluations: list[tuple[int, float]] = []
    start = time.monotonic()
    with open(stderr_file, "w") as stderr:
        process = subprocess.Popen(command, stderr=stderr, env={**os.environ, **env})
        while process.poll() is None:
            rss = memory_mib(process.pid)
            if rss is not None:
                samples.append((round(time.monotonic() - start, 1), round(rss, 1)))
                logged = log_file.read_text().count("\n") if log_file.exists() else 0
                if logged > len(at_evaluations):
                    at_evaluations.append((logged, round(rss, 1)))
            time.sleep(every)
    if process.returncode:
        sys.exit(f"train_memory: seqcli train failed; see {stderr_file}")
    return {"samples": samples, "rss_mib_at_evaluations": at_evaluations}


def measure(row: str, args: argparse.Namespace) -> dict[str, Any]:
    run_dir = args.work / row
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    command = [
        str(Path(sys.executable).parent / "seqcli"), "train", "--config", str(args.config),
        "--train", str(args.data / "train"), "--valid", str(args.data / "valid"),
        "--max-minutes", f"{args.minutes:g}", "--device", "cpu", "--out", str(run_dir),
    ]  # fmt: skip
    load_before = os.getloadavg()
    watched = watch(command, ROWS[row], run_dir / "log.jsonl", args.work / f"{row}.log", args.every)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    evaluations = watched["rss_mib_at_evaluations"]
    first, last = evaluations[0][1], evaluations[-1][1]
    record = {
        "row": row,
        "environment": ROWS[row],
        "command": shlex.join(["seqcli", *command[1:]]),
        "updates": log[-1]["step"],
        "target_tokens_per_second": log[-1]["target_tokens_per_second"],
        "rss_mib_first_evaluation": first,
        "rss_mib_last_evaluation": last,
        "growth_percent": round(100 * (last / first - 1), 1),
        "peak_rss_mib": max(rss for _, rss in watched["samples"]),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **watched,
    }
    print(
        f"{row}: {record['updates']} updates; RSS {first:,.0f} MiB at the first evaluation,"
        f" {last:,.0f} at the last ({record['growth_percent']:+.1f}%), peak {record['peak_rss_mib']:,.0f}",
        flush=True,
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-de-en-cpu.toml")
    parser.add_argument("--data", type=Path, default=shared_data("multi30k"))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "train-memory")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train-memory-cpu.json")
    args = parser.parse_args()
    started = provenance()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in args.rows:
        rows.append(measure(row, args))
        write_result(args.out, {"config": str(args.config), "minutes": args.minutes, "rows": rows}, started)


if __name__ == "__main__":
    main()
