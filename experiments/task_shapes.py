"""`seqcli train` with no config on four task shapes, beside a tuned config with the same budget.

- commands (random and length splits): a generated command language to action tokens
  (`seqcli data generate commands`), 12 source and 6 target words, outputs up to 48 tokens;
  in the length split every test output is longer than any training output.
- symbols: generated pseudo-words spelled letter by letter to their sounds
  (`seqcli data generate symbols`), one symbol a token on both sides.
- enja: small_parallel_enja en->ja, 50,000 short pairs already split into words.
- multi30k: Multi30k de->en, 29,000 caption pairs (the tuned row is configs/multi30k-de-en-cpu.toml).

Each run trains with one torch thread for --minutes and is scored on its test split, greedy and
beam 5 (exact match, BLEU, chrF); the training process's resident memory is sampled every 10 s.
Runs go one after the other; every record carries its provenance (date, commit, hardware,
torch, command, load average).

    python -m experiments.task_shapes --minutes 15 --runs commands-random:defaults
    python -m experiments.task_shapes --runs     # the table of the runs kept, nothing trained
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.process_memory import memory_mib
from benchmarks.provenance import provenance, write_result
from benchmarks.shared_data import shared_data
from experiments.multi30k_cpu import REPO, markdown_table, score_test, seqcli, thread_env

RESULTS = REPO / "benchmarks" / "results" / "task-shapes.json"
# task -> (corpus folder: generated under --work, or under --data; source, target, test prefix)
TASKS: dict[str, tuple[str, str, str, str]] = {
    "commands-random": ("generated:commands:random", "src", "tgt", "test"),
    "commands-length": ("generated:commands:length", "src", "tgt", "test"),
    "symbols": ("generated:symbols:random", "src", "tgt", "test"),
    "enja": ("small_parallel_enja", "en", "ja", "test"),
    "multi30k": ("multi30k", "de", "en", "test2016"),
}
# row -> extra `seqcli train` arguments for a task (the tuned rows: what a user would set by hand)
TUNED = {
    "commands-random": ["--tokenizer-type", "word", "--separate", "--hidden-size", "256", "--dropout", "0.1"],
    "commands-length": ["--tokenizer-type", "word", "--separate", "--hidden-size", "256", "--dropout", "0.1"],
    "symbols": ["--tokenizer-type", "word", "--separate", "--dropout", "0.1"],
    "enja": ["--tokenizer-type", "word", "--separate"],
    "multi30k": ["--config", str(REPO / "configs" / "multi30k-de-en-cpu.toml")],
}


def corpus(task: str, data: Path, work: Path) -> Path:
    folder = TASKS[task][0]
    if not folder.startswith("generated:"):
        return data / folder
    _, kind, split = folder.split(":")
    out = work / "data" / task
    if not (out / "test.tgt").exists():
        subprocess.run(seqcli("data", "generate", kind, "--out", str(out), "--split", split), check=True)
    return out


def train_sampling_memory(name: str, work: Path, args: list[str]) -> dict[str, Any]:
    """Run one training command with one torch thread, its stderr to WORK/NAME.log, sampling its
    resident memory every 10 s; returns the wall time, load averages and the samples."""
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    samples: list[tuple[float, float]] = []
    with open(work / f"{name}.log", "w") as log:
        process = subprocess.Popen(args, stderr=log, env=thread_env(1))

        def sample() -> None:
            while process.poll() is None:
                samples.append((round(time.monotonic() - start, 1), round(memory_mib(process.pid) or 0.0, 1)))
                time.sleep(10)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if process.wait():
            raise SystemExit(f"{name}: seqcli train failed (see {work / name}.log)")
        sampler.join()
    return {
        "command": shlex.join(["seqcli", *args[1:]]),
        "wall_seconds": round(time.monotonic() - start, 1),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "rss_mib_samples": [s for s in samples if s[1] > 0],
    }


def run(task: str, row: str, data: Path, work: Path, minutes: float) -> dict[str, Any]:
    started = provenance()
    name = f"{task}-{row}"
    folder, src, tgt, test = TASKS[task]
    path = corpus(task, data, work)
    run_dir = work / name
    args = seqcli(
        "train", "--train", str(path / "train"), "--valid", str(path / "valid"), "--src-lang", src,
        "--tgt-lang", tgt, "--max-minutes", f"{minutes:g}", "--device", "cpu", "--out", str(run_dir),
        *(TUNED[task] if row == "tuned" else []),
    )  # fmt: skip
    record = train_sampling_memory(name, work, args)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    said = (work / f"{name}.log").read_text().splitlines()
    config = (run_dir / "config.toml").read_text()
    record.update(
        task=task,
        row=row,
        updates=log[-1]["step"],
        train_seconds=log[-1]["elapsed_seconds"],
        best_valid_bleu=max(r["valid_bleu"] for r in log),
        start_lines=[line for line in said if "tokenizer" in line or "preset" in line or "warning" in line],
        tokenizer=config.split("[tokenizer]")[1].split("[")[0].strip().splitlines(),
    )
    for beam in (1, 5):
        record[f"beam{beam}"] = score_test(run_dir, path / test, src, tgt, beam)
    record["provenance"] = started
    print(f"{name}: {record['beam1']['exact_match']:.2f}% exact greedy", file=sys.stderr, flush=True)
    return record


def tokenizer_of(record: dict[str, Any]) -> str:
    """'word, 16 pieces, separate' from the run's [tokenizer] lines."""
    settings = tomllib.loads("\n".join(record["tokenizer"]))
    sharing = "joint" if settings["joint"] else "separate"
    return f"{settings['type']}, {settings['vocab_size']:,} pieces, {sharing}"


def table(records: list[dict[str, Any]]) -> str:
    header = [
        "task", "settings", "tokenizer", "updates", "exact match, greedy / beam 5", "BLEU, greedy / beam 5",
        "peak RSS MiB", "load before / after",
    ]  # fmt: skip
    rows = [
        [
            r["task"],
            r["row"],
            tokenizer_of(r),
            f"{r['updates']:,}",
            f"{r['beam1']['exact_match']:.2f} / {r['beam5']['exact_match']:.2f}",
            f"{r['beam1']['bleu']:.2f} / {r['beam5']['bleu']:.2f}",
            f"{max(m for _, m in r['rss_mib_samples']):,.0f}" if r.get("rss_mib_samples") else "-",
            f"{r['load_before']:.2f} / {r['load_after']:.2f}",
        ]
        for r in sorted(records, key=lambda r: (list(TASKS).index(r["task"]), r["row"]))
    ]
    return markdown_table(header, "lllrrrrr", rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data())
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "task-shapes")
    parser.add_argument("--minutes", type=float, default=15.0)
    every = [f"{task}:{row}" for task in TASKS for row in ("defaults", "tuned")]
    parser.add_argument("--runs", nargs="*", default=every, choices=every)
    args = parser.parse_args()
    if not args.runs:  # `--runs` alone: the table of the runs kept, nothing trained
        print(table(json.loads(RESULTS.read_text())["runs"]))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    started = provenance()
    kept = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    for job in args.runs:
        task, row = job.split(":")
        record = run(task, row, args.data, args.work, args.minutes)
        kept = [r for r in kept if (r["task"], r["row"]) != (task, row)] + [record]
        write_result(RESULTS, {"minutes": args.minutes, "runs": kept}, started)
    print(table(kept))


if __name__ == "__main__":
    main()
