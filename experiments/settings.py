"""The CPU recipe trained with each of a few settings for the same time budget, one after the other.

Each --setting is NAME=FLAG,FLAG,... (extra `seqcli train` flags; none for the recipe as it is).
Every run trains configs/multi30k-de-en-cpu.toml for --minutes with one torch thread; the
record holds the updates, the training speed, valid BLEU at each evaluation and the best one,
what the end of training found (finish.json) and the process's resident memory sampled every
10 s. What the docs show:

    # fast kernels against the model's reference code (docs/benchmarks.md, section 11)
    python -m experiments.settings --minutes 9 --setting fast=--kernels,fast \\
        --setting reference=--kernels,reference --out benchmarks/results/kernels-multi30k-cpu.json
    # length buckets against mixed-length batches, validated every 200 updates (docs/benchmarks.md, 4)
    python -m experiments.settings --minutes 8 --setting buckets=--set,train.eval_every=200 \\
        --setting random=--set,train.eval_every=200,--set,train.batching=random \\
        --out benchmarks/results/batching-multi30k-cpu.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.provenance import provenance, write_result
from benchmarks.shared_data import shared_data
from experiments.multi30k_cpu import REPO, seqcli
from experiments.task_shapes import train_sampling_memory
from seqcli.checkpoint import read_log
from seqcli.finish import read_finish


def parse_setting(text: str) -> tuple[str, list[str]]:
    """NAME=FLAG,FLAG,... -> (name, flags)."""
    name, _, flags = text.partition("=")
    return name, [flag for flag in flags.split(",") if flag]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data("multi30k"))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "settings")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--setting", action="append", required=True, help="NAME=FLAG,FLAG,...")
    parser.add_argument("--out", type=Path, required=True, help="The result file (JSON).")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = provenance()
    runs = []
    for name, flags in map(parse_setting, args.setting):
        run_dir = args.work / name
        command = seqcli(
            "train", "--config", str(REPO / "configs" / "multi30k-de-en-cpu.toml"),
            "--train", str(args.data / "train"), "--valid", str(args.data / "valid"),
            "--max-minutes", f"{args.minutes:g}", "--device", "cpu", "--out", str(run_dir), *flags,
        )  # fmt: skip
        record = train_sampling_memory(name, args.work, command)
        log = read_log(run_dir)
        record.update(
            setting=name,
            flags=flags,
            updates=log[-1]["step"],
            target_tokens_per_second=log[-1]["target_tokens_per_second"],
            valid_bleu=[[r["step"], r["valid_bleu"]] for r in log],
            best_valid_bleu=max(r["valid_bleu"] for r in log),
            finish=read_finish(run_dir) or None,  # averaging, length penalty
            provenance=provenance(),
        )
        runs.append(record)
        write_result(args.out, {"minutes": args.minutes, "runs": runs}, started)
        print(f"{name}: {record['updates']} updates, best valid BLEU {record['best_valid_bleu']}", flush=True)


if __name__ == "__main__":
    main()
