"""Training speed of each recurrent cell at a recipe's sizes: target tokens per second, in one run.

Every cell gets the recipe's configuration with only model.cell changed (the CPU recipe: a
1-layer bidirectional encoder and a decoder of 256, general attention without input feeding, so
the decoder runs whole targets too), the same SentencePiece model, and the same bucketed
batches of the training corpus in the same order. The cells take turns, --repeats rounds of
--steps timed updates each after --warmup untimed ones; the table gives each cell's median and
its ratio to the LSTM's.

    python benchmarks/cells.py --config configs/multi30k-de-en-cpu.toml \\
        --data ../shared/data/multi30k --out benchmarks/results/cells-cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import provenance, write_result  # noqa: E402

from seqcli.config import config_from_dict, load_toml, merge  # noqa: E402
from seqcli.corpus import bucket_batches  # noqa: E402
from seqcli.tasks import new_trainer  # noqa: E402
from seqcli.train import Trainer  # noqa: E402
from seqcli.translation_task import TranslationTask  # noqa: E402

CELLS = ("lstm", "gru", "mingru", "minlstm")


def trainer_for(cell: str, args: argparse.Namespace, work: Path, spm: str) -> Trainer:
    values = merge(load_toml(args.config), {
        "data": {"train": f"{args.data}/train", "valid": f"{args.data}/valid"},
        "tokenizer": {"src_model": spm, "tgt_model": ""},
        "model": {"cell": cell},
        "train": {"kernels": args.kernels},
    })  # fmt: skip
    return new_trainer(config_from_dict(values), work / cell, args.device)


def timed_updates(trainer: Trainer, batches: list[list[int]], warmup: int) -> float:
    """Target tokens per second over `batches` after `warmup` of them untimed."""
    task = trainer.task
    assert isinstance(task, TranslationTask)
    examples = task.train_items
    for indices in batches[:warmup]:
        trainer.train_update([[examples[i] for i in indices]], 0)
    tokens, started = 0, time.perf_counter()
    for indices in batches[warmup:]:
        tokens += trainer.train_update([[examples[i] for i in indices]], 0)[1]
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="The recipe (its [model] and [train]).")
    parser.add_argument("--data", required=True, help="Folder with train.SRC, train.TGT, valid.*")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernels", default="fast", choices=("fast", "reference"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = provenance()
    cells = args.cells.split(",")
    with tempfile.TemporaryDirectory(prefix="seqcli-cells-") as tmp:
        work = Path(tmp)
        first = trainer_for(cells[0], args, work, "")  # trains the SentencePiece model the others share
        spm = work / "shared.spm"
        first.task.tokenizers[0].save(spm)
        trainers = {cells[0]: first, **{cell: trainer_for(cell, args, work, str(spm)) for cell in cells[1:]}}
        task = first.task
        assert isinstance(task, TranslationTask)
        batches = bucket_batches(task.train_items, first.config.train.batch_tokens, seed=1)
        speeds: dict[str, list[float]] = {cell: [] for cell in cells}
        for repeat in range(args.repeats):
            for cell in cells:
                offset = repeat * (args.steps + args.warmup)
                window = batches[offset : offset + args.warmup + args.steps]
                speeds[cell].append(timed_updates(trainers[cell], window, args.warmup))
                print(f"round {repeat + 1}, {cell}: {speeds[cell][-1]:,.0f} target tok/s", flush=True)
        parameters = {cell: sum(p.numel() for p in t.model.parameters()) for cell, t in trainers.items()}
    medians = {cell: statistics.median(values) for cell, values in speeds.items()}
    reference = medians.get("lstm", next(iter(medians.values())))
    rows = [
        f"| {cell} | {parameters[cell]:,} | {medians[cell]:,.0f} | {medians[cell] / reference:.2f} |"
        for cell in cells
    ]
    table = "\n".join(
        ["| cell | parameters | target tok/s (median) | / LSTM |", "|---|---:|---:|---:|", *rows]
    )
    print(table)
    figures: dict[str, Any] = {
        "config": str(args.config),
        "kernels": args.kernels,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "repeats": args.repeats,
        "target_tokens_per_second": speeds,
        "median": medians,
        "parameters": parameters,
        "table": table,
    }
    if args.out:
        write_result(args.out, figures, started)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
