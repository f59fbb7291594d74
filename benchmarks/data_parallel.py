"""Training speed of N torchrun processes against 1 process on the same work.

Every configuration makes the same updates over the same batches: 1 process accumulates
N batches per update (--accum-steps N), N processes take 1 batch each. Speed is target tokens
per second of training, from the run's last log record (validation time excluded), and the
wall time of the whole command. Each configuration is run --repeats times, alternating, and
the machine's load average is recorded before every run.

    python benchmarks/data_parallel.py --config configs/dates.toml --train data/dates/train \
        --valid data/dates/valid --nproc 2 --steps 40 --out benchmarks/results/data-parallel-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from provenance import provenance, write_result


def run_once(args: argparse.Namespace, nproc: int, threads: int, out: Path) -> dict[str, float]:
    accum_steps = args.nproc // nproc
    seqcli = ["-m", "seqcli", "train", "--config", args.config, "--train", args.train, "--valid", args.valid]
    seqcli += ["--max-steps", str(args.steps), "--eval-every", str(args.steps), "--max-minutes", "0"]
    seqcli += ["--accum-steps", str(accum_steps), "--device", "cpu", "--out", str(out)]
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load = os.getloadavg()[0]
    start = time.monotonic()
    subprocess.run([*launcher, *seqcli], check=True, env=environment, capture_output=True)
    wall = time.monotonic() - start
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {
        "processes": nproc,
        "threads_per_process": threads,
        "accum_steps": accum_steps,
        "load_average_before": round(load, 2),
        "train_tokens_per_second": record["target_tokens_per_second"],
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--valid", required=True)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    # (processes, torch threads each): N single-threaded processes, 1 single-threaded process,
    # and 1 process using N threads, the usual way to spend N cores without torchrun.
    setups = [(args.nproc, 1), (1, 1), (1, args.nproc)]
    started = provenance()
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for nproc, threads in setups:
                result = run_once(args, nproc, threads, Path(scratch) / f"{nproc}x{threads}-{repeat}")
                print(json.dumps(result), flush=True)
                runs.append(result)
    report = {
        "config": args.config,
        "steps": args.steps,
        "batches_per_update": args.nproc,
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "runs": runs,
    }
    write_result(Path(args.out), report, started)


if __name__ == "__main__":
    main()
