"""Training speed of checkouts and kernels on a recipe, taking turns: target tokens per second.

Each variant is a checkout of seqcli (run from its own tree) and extra `seqcli train` flags,
for example this checkout with `--kernels fast` and `--kernels reference`, and an older
checkout. Every round trains each variant in turn for --steps updates of the recipe, with one
torch thread, and reads the training speed the run logged (real target tokens per second of
training, validation excluded); the table gives each variant's median over the rounds and its
ratio to the first variant.

    python benchmarks/train_speed.py --data ../shared/data/multi30k \\
        --variant fast=.:--kernels,fast --variant reference=.:--kernels,reference \\
        --variant before=/tmp/seqcli-before: --out benchmarks/results/train-speed-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from provenance import REPO, provenance, write_result


def parse_variant(text: str) -> tuple[str, Path, list[str]]:
    """NAME=TREE:FLAG,FLAG,... -> (name, tree, flags)."""
    name, _, rest = text.partition("=")
    tree, _, flags = rest.partition(":")
    return name, (REPO / tree).resolve(), [f for f in flags.split(",") if f]


def train_once(tree: Path, flags: list[str], config: Path, data: Path, steps: int, work: Path) -> float:
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [
        sys.executable, "-m", "seqcli", "train", "--config", str(config),
        "--train", str(data / "train"), "--valid", str(data / "valid"),
        "--max-steps", str(steps), "--eval-every", str(steps), "--device", "cpu", "--out", str(run_dir),
        "--set", "train.tune_length_penalty=", "--set", "train.average_last=0", *flags,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    subprocess.run(command, cwd=tree, env=env, check=True, stderr=subprocess.DEVNULL)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return float(log[-1]["target_tokens_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "multi30k-de-en-cpu.toml")
    parser.add_argument("--variant", action="append", required=True, help="NAME=TREE:FLAG,FLAG")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    started = provenance()
    speeds: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for name, tree, flags in variants:
                speeds[name].append(
                    train_once(tree, flags, args.config.resolve(), args.data, args.steps, Path(work))
                )
                print(f"{name}: {speeds[name][-1]:,.0f} tok/s", file=sys.stderr, flush=True)
    first = statistics.median(speeds[variants[0][0]])
    rows: list[dict[str, Any]] = [
        {
            "variant": name,
            "tree": str(tree),
            "flags": flags,
            "tokens_per_second": speeds[name],
            "median": statistics.median(speeds[name]),
            "ratio_to_first": round(statistics.median(speeds[name]) / first, 3),
        }
        for name, tree, flags in variants
    ]
    write_result(args.out, {"steps": args.steps, "config": str(args.config), "rows": rows}, started)
    for row in rows:
        print(f"{row['variant']:>12}: {row['median']:>9,.0f} tok/s (x{row['ratio_to_first']:.3f})")


if __name__ == "__main__":
    main()
