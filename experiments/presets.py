"""`seqcli train` without a config file, before and after presets, on two tasks of different shapes.

For each task, two runs with the same wall-clock budget, side by side with one torch thread
each: `--preset gpu-base` (the model `seqcli train` built whatever the machine before presets:
the 2-layer BiLSTM 512 with input feeding; its vocabulary now sized by the corpus) and no
preset flag at all (the automatic choice, `cpu-small` on a CPU). Both are scored greedy and
with beam 5 on the task's test set.

- Multi30k de->en: 29,000 caption pairs, subword vocabulary;
- small_parallel_enja en->ja: 50,000 short pairs, already split into words on both sides.

The sizes fitted to a small corpus (seqcli.presets.fit_to_corpus) are measured the same way on
Tatoeba fr->en (4,034 short training pairs): the fitted batches and cadence at the preset's
width of 256 (`width-256`, what no flag gives), the same at a width of 128 (`width-128`), and the
preset's sizes as they were before fitting (`unfitted`).

    python -m experiments.presets --data ../shared/data --work runs/presets --minutes 10
    python -m experiments.presets --tasks tatoeba-fr-en --rows width-128 width-256 unfitted \
        --workers 3 --minutes 8 --results benchmarks/results/corpus-sizes.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.provenance import provenance, write_result
from benchmarks.shared_data import shared_data
from experiments.multi30k_cpu import REPO, markdown_table, run_logged, score_test, seqcli

RESULTS = REPO / "benchmarks" / "results" / "presets.json"
# task -> (folder under --data, source, target, test prefix)
TASKS = {
    "multi30k-de-en": ("multi30k", "de", "en", "test2016"),
    "enja-en-ja": ("small_parallel_enja", "en", "ja", "test"),
    "tatoeba-fr-en": ("tatoeba_eng_fra_5k", "fr", "en", "test"),
}
WIDTH_256 = ["--hidden-size", "256", "--embedding-size", "256"]
ROWS = {
    "gpu-base": ["--preset", "gpu-base"],
    "auto": [],
    "width-256": WIDTH_256,
    "width-128": ["--hidden-size", "128", "--embedding-size", "128"],
    # cpu-small's own sizes, as `seqcli train` used them before fitting them to the corpus
    "unfitted": [
        *WIDTH_256,
        "--batch-tokens",
        "3000",
        "--eval-every",
        "400",
        "--set",
        "train.warmup_steps=200",
    ],
}


def run(task: str, row: str, data: Path, work: Path, minutes: float, seed: int) -> dict[str, Any]:
    name = f"{task}-{row}" + (f"-seed{seed}" if seed != 1 else "")
    marker = work / f"{name}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder, src, tgt, test = TASKS[task]
    corpus = data / folder
    run_dir = work / name
    args = seqcli(
        "train", "--train", str(corpus / "train"), "--valid", str(corpus / "valid"), "--src-lang", src,
        "--tgt-lang", tgt, "--max-minutes", f"{minutes:g}", "--device", "cpu", "--out", str(run_dir),
        "--seed", str(seed), *ROWS[row],
    )  # fmt: skip
    record = run_logged(name, work, args)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    said = (work / f"{name}.log").read_text().splitlines()  # the run's stderr
    record.update(
        task=task,
        row=row,
        seed=seed,
        updates=log[-1]["step"],
        train_seconds=log[-1]["elapsed_seconds"],
        best_valid_bleu=max(r["valid_bleu"] for r in log),
        preset_line=next((line for line in said if "preset" in line), ""),
        sizes_line=next((line for line in said if "sizes from" in line), ""),
    )
    for beam in (1, 5):
        record[f"beam{beam}"] = score_test(run_dir, corpus / test, src, tgt, beam)
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: done", file=sys.stderr, flush=True)
    return record


def table(records: list[dict[str, Any]]) -> str:
    header = [
        "task", "settings", "updates", "training", "valid BLEU", "test BLEU greedy / beam 5",
        "test chrF greedy / beam 5",
    ]  # fmt: skip
    rows = [
        [
            r["task"],
            r["row"] + (f", seed {r['seed']}" if r.get("seed", 1) != 1 else ""),
            f"{r['updates']:,}",
            f"{r['train_seconds']:.0f} s",
            f"{r['best_valid_bleu']:.2f}",
            f"{r['beam1']['bleu']:.2f} / {r['beam5']['bleu']:.2f}",
            f"{r['beam1']['chrf']:.2f} / {r['beam5']['chrf']:.2f}",
        ]
        for r in records
    ]
    return markdown_table(header, "llrrrll", rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data())
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "presets")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS)[:2], choices=list(TASKS))
    parser.add_argument("--rows", nargs="*", default=["gpu-base", "auto"], choices=list(ROWS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = provenance()
    args.work.mkdir(parents=True, exist_ok=True)
    jobs = [(task, row, seed) for seed in args.seeds for task in args.tasks for row in args.rows]
    with ThreadPoolExecutor(args.workers) as pool:
        records = list(
            pool.map(lambda job: run(job[0], job[1], args.data, args.work, args.minutes, job[2]), jobs)
        )
    write_result(args.results, {"minutes": args.minutes, "runs": records}, started)
    print(table(records))


if __name__ == "__main__":
    main()
