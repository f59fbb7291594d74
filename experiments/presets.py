"""`seqcli train` without a config file, before and after presets, on two tasks of different shapes.

For each task, two runs with the same wall-clock budget, side by side with one torch thread
each: `--preset gpu-base` (the model `seqcli train` built whatever the machine before presets:
the 2-layer BiLSTM 512 with input feeding; its vocabulary now sized by the corpus) and no
preset flag at all (the automatic choice, `cpu-small` on a CPU). Both are scored greedy and
with beam 5 on the task's test set.

- Multi30k de->en: 29,000 caption pairs, subword vocabulary;
- small_parallel_enja en->ja: 50,000 short pairs, already split into words on both sides.

    python -m experiments.presets --data ../shared/data --work runs/presets --minutes 10
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from experiments.multi30k_cpu import REPO, markdown_table, run_logged, score_test, seqcli

RESULTS = REPO / "benchmarks" / "results" / "presets.json"
# task -> (folder under --data, source, target, test prefix)
TASKS = {
    "multi30k-de-en": ("multi30k", "de", "en", "test2016"),
    "enja-en-ja": ("small_parallel_enja", "en", "ja", "test"),
}
ROWS = {"gpu-base": ["--preset", "gpu-base"], "auto": []}


def run(task: str, row: str, data: Path, work: Path, minutes: float) -> dict[str, Any]:
    name = f"{task}-{row}"
    marker = work / f"{name}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder, src, tgt, test = TASKS[task]
    corpus = data / folder
    run_dir = work / name
    args = seqcli(
        "train", "--train", str(corpus / "train"), "--valid", str(corpus / "valid"), "--src-lang", src,
        "--tgt-lang", tgt, "--max-minutes", f"{minutes:g}", "--device", "cpu", "--out", str(run_dir),
        *ROWS[row],
    )  # fmt: skip
    record = run_logged(name, work, args)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    record.update(
        task=task,
        row=row,
        updates=log[-1]["step"],
        train_seconds=log[-1]["elapsed_seconds"],
        best_valid_bleu=max(r["valid_bleu"] for r in log),
        preset_line=next(
            (line for line in (work / f"{name}.log").read_text().splitlines() if "preset" in line), ""
        ),
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
            r["row"],
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
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "presets")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    jobs = [(task, row) for task in args.tasks for row in ROWS]
    with ThreadPoolExecutor(args.workers) as pool:
        records = list(pool.map(lambda job: run(job[0], job[1], args.data, args.work, args.minutes), jobs))
    RESULTS.write_text(json.dumps({"minutes": args.minutes, "runs": records}, indent=2) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
