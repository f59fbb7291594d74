"""The CPU recipe trained with `--kernels fast` and with `--kernels reference` for the same budget.

Both settings build the same model; `reference` runs the model's own code (the decoder step by
step as written), `fast` the equal kernels of seqcli/fast. Each run trains
configs/multi30k-de-en-cpu.toml for --minutes with one torch thread, one after the other; the
record holds the updates, the training speed, the best valid BLEU, what the end of training
found (finish.json) and the process's resident memory sampled every 10 s.

    python -m experiments.kernels --data ../shared/data/multi30k --minutes 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.provenance import provenance, write_result
from experiments.multi30k_cpu import REPO, seqcli
from experiments.task_shapes import train_sampling_memory

RESULTS = REPO / "benchmarks" / "results" / "kernels-multi30k-cpu.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "kernels")
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = provenance()
    runs = []
    for kernels in ("fast", "reference"):
        run_dir = args.work / kernels
        command = seqcli(
            "train", "--config", str(REPO / "configs" / "multi30k-de-en-cpu.toml"),
            "--train", str(args.data / "train"), "--valid", str(args.data / "valid"),
            "--max-minutes", f"{args.minutes:g}", "--kernels", kernels, "--device", "cpu",
            "--out", str(run_dir),
        )  # fmt: skip
        record = train_sampling_memory(kernels, args.work, command)
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        record.update(
            kernels=kernels,
            updates=log[-1]["step"],
            target_tokens_per_second=log[-1]["target_tokens_per_second"],
            best_valid_bleu=max(r["valid_bleu"] for r in log),
            finish=json.loads((run_dir / "finish.json").read_text()),
            provenance=provenance(),
        )
        runs.append(record)
        write_result(RESULTS, {"minutes": args.minutes, "runs": runs}, started)
        print(
            f"{kernels}: {record['updates']} updates, best valid BLEU {record['best_valid_bleu']}", flush=True
        )


if __name__ == "__main__":
    main()
