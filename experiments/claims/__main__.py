"""Run the claims experiments and write docs/experiments.md.

    .venv/bin/python -m experiments.claims all --work runs/claims
    .venv/bin/python -m experiments.claims beam --work runs/claims      # one experiment alone
    .venv/bin/python -m experiments.claims report                       # only rewrite the report

Each part of an experiment writes WORK/<part>/results.json (with its wall-clock seconds, date,
commit and machine) and a copy with its provenance to RESULTS/<part>.json (default
benchmarks/results/claims/, committed); `report` builds the Markdown and figures from the results
in RESULTS alone, and puts the hand-written reading of each part (a `## part` section of
experiments/claims/readings.md) where the part's section asks for it, or after its tables.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.provenance import provenance
from benchmarks.shared_data import shared_data
from experiments.claims.common import REPO, load_json, log, write_json

READINGS = Path(__file__).with_name("readings.md")
RESULTS = REPO / "benchmarks" / "results" / "claims"  # what the report is built from, committed
# Parts whose result files hold the grid's runs, each with its training seconds. A run read by
# several parts (the general-attention models) is counted once; one a part trained again, on
# another day or machine, counts again (runs are told apart by name, seed and seconds).
GRID_PARTS = ("bottleneck", "soft-hard", "sampling", "directions-multi30k")
GRID_WORKERS = 2  # runs trained at a time (the --workers default), one torch thread each
WIDTH = 100  # the column the generated prose wraps at, as the hand-written readings do

# part -> (module, runner, section). Runners take (work, seeds, workers, tiny), and the data
# directory too where they read Multi30k; sections take (results, figures directory).
EXPERIMENTS = {
    "memory": ("memory", "run", "section"),
    "bottleneck": ("real", "run_bottleneck", "section_bottleneck"),
    "length": ("synthetic", "run_length", "section_length"),
    "soft-hard": ("real", "run_soft_hard", "section_soft_hard"),
    "sampling": ("real", "run_sampling", "section_sampling"),
    "beam": ("real", "run_beam", "section_beam"),
    "directions": ("synthetic", "run_directions", "section_directions"),
    "dates": ("dates", "run", "section"),
    "directions-multi30k": ("real", "run_directions", "section_directions"),
    "skipthought": ("skipthought", "run", "section"),
    "cells": ("cells", "run", "section"),
}
READS_MULTI30K = {"bottleneck", "soft-hard", "sampling", "beam", "directions-multi30k", "cells"}


def _function(part: str, which: int) -> Callable[..., Any]:
    module = importlib.import_module(f"experiments.claims.{EXPERIMENTS[part][0]}")
    return getattr(module, EXPERIMENTS[part][which])  # type: ignore[no-any-return]


# Sub-commands: one per numbered experiment; each runs the parts listed.
COMMANDS = {
    "memory": ["memory"],
    "bottleneck": ["bottleneck", "length"],
    "soft-hard": ["soft-hard"],
    "sampling": ["sampling"],
    "beam": ["beam"],
    "directions": ["directions", "dates", "directions-multi30k"],
    "skipthought": ["skipthought"],
    "cells": ["cells"],
}
HEADINGS = {
    "bottleneck": ["## 2. The fixed-vector bottleneck: attention none vs additive vs general", ""],
    "directions": ["## 6. Bidirectional vs unidirectional encoder", ""],
}


def results_path(work: Path, part: str) -> Path:
    return work / part / "results.json"


def run_part(
    part: str,
    work: Path,
    results_dir: Path,
    seeds: list[int],
    workers: int,
    tiny: bool,
    data: Path,
    books: Path | None,
) -> None:
    runner = _function(part, 1)
    started = provenance()
    start = time.monotonic()
    load_before = os.getloadavg()[0]
    extra: tuple[Path | None, ...] = (data,) if part in READS_MULTI30K else ()
    if part == "skipthought":
        extra = (books,)
    results = runner(work, seeds, workers, tiny, *extra)
    results["wall_seconds"] = round(time.monotonic() - start, 1)
    results["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    results["workers"] = workers
    results["provenance"] = started
    write_json(results_path(work, part), results)
    write_json(results_dir / f"{part}.json", results)
    log(f"{part}: {results['wall_seconds']:.0f} s")


def readings() -> dict[str, list[str]]:
    """The hand-written reading of each experiment: '## name' sections of readings.md."""
    if not READINGS.exists():
        return {}
    found: dict[str, list[str]] = {}
    name = ""
    for line in READINGS.read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"## (\S+)", line):
            name = match.group(1)
            found[name] = []
        elif name:
            found[name].append(line)
    return {k: [*_strip(v)] for k, v in found.items()}


def _strip(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def grid_summary(results_dir: Path) -> dict[str, Any] | None:
    """The Multi30k grid as the committed part files hold it: its distinct runs, updates and
    summed training seconds (None when no part that reads the grid has results)."""
    runs: set[tuple[str, int, float]] = set()  # (name, seed, training seconds)
    steps: set[int] = set()
    for part in GRID_PARTS:
        path = results_dir / f"{part}.json"
        if not path.exists():
            continue
        results = load_json(path)
        steps.add(results["steps"])
        for name, records in results["runs"].items():
            for seed, record in zip(results["seeds"], records, strict=True):
                runs.add((name, seed, record["seconds"]))
    if not runs:
        return None
    return {
        "runs": len(runs),
        "configurations": len({name for name, _, _ in runs}),
        "seeds": sorted({seed for _, seed, _ in runs}),
        "steps": sorted(steps),
        "run_seconds": sum(seconds for _, _, seconds in runs),
    }


def _grid_wall_seconds(grid: dict[str, Any]) -> float:
    """The grid's wall-clock time trained GRID_WORKERS runs at a time: their summed training
    time over the workers (what a call of `train` from scratch takes)."""
    return float(grid["run_seconds"]) / GRID_WORKERS


def _total_seconds(results_dir: Path) -> float:
    """The grid's training time and every part's run time, from the results found. A grid part
    whose run time holds the training of its runs (it trained them itself rather than reading
    them trained) counts only the rest: the grid's time already holds that training."""
    total = 0.0
    for part in EXPERIMENTS:
        path = results_dir / f"{part}.json"
        if not path.exists():
            continue
        results = load_json(path)
        seconds = float(results["wall_seconds"])
        if part in GRID_PARTS:
            records = (record for runs in results["runs"].values() for record in runs)
            training = sum(record["seconds"] for record in records) / results["workers"]
            if seconds > training:
                seconds -= training
        total += seconds
    if grid := grid_summary(results_dir):
        total += _grid_wall_seconds(grid)
    return total


def _grid_lines(grid: dict[str, Any]) -> list[str]:
    updates = " or ".join(str(n) for n in grid["steps"])
    seeds = ", ".join(str(n) for n in grid["seeds"])
    text = (
        f"Experiments 2-6 read Multi30k de->en models of {updates} updates each: {grid['runs']} runs of"
        f" {grid['configurations']} configurations over seeds {seeds} (a part that trained its own copy of a"
        " configuration counts it again); their training took"
        f" {_duration(grid['run_seconds'])} summed over the runs, {GRID_WORKERS} runs at a time with one"
        f" torch thread each: about {_duration(_grid_wall_seconds(grid))} of wall-clock time."
        " Each part below says when, where and at which commit its runs were measured."
    )
    return [*textwrap.wrap(text, WIDTH), ""]


def _measured(results: dict[str, Any]) -> str:
    """'date, commit C, CPU, N cores, torch T' from a result's provenance."""
    on = results["provenance"]
    machine = f"{on['hardware']['cpu']}, {on['hardware']['cores']} cores, torch {on['torch']}"
    return f"{on['date'][:10]}, commit {(on['commit'] or 'unknown')[:7]}, {machine}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _duration(seconds: float) -> str:
    """Minutes up to two hours, hours beyond."""
    return _minutes(seconds) if seconds <= 7200 else f"{seconds / 3600:.1f} hours"


def _workers(count: int) -> str:
    return f"{count} worker process" if count == 1 else f"{count} worker processes"


def report(results_dir: Path, out: Path, figures: Path) -> list[str]:
    """docs/experiments.md from the results kept in results_dir."""
    texts = readings()
    grid = grid_summary(results_dir)
    lines = [
        "# The classic claims, measured by seqcli",
        "",
        "Each claim of the recurrent lineage measured with seqcli's own library, every configuration over",
        "several seeds: tables give mean ± sample standard deviation over the seeds, figures the mean with",
        "a band from the lowest to the highest seed. Models are small and trained for minutes on a CPU, so",
        "they show what these settings show, not what the papers showed at scale.",
        "",
        *textwrap.wrap(
            f"Reproduce everything (about {_duration(_total_seconds(results_dir))} of wall-clock time on 2"
            " CPU cores, as measured below: the Multi30k grid's training and each part's run time; each"
            " experiment can be rerun alone with its own sub-command, and finished models are reused):",
            WIDTH,
        ),
        "",
        "```sh",
        ".venv/bin/python -m experiments.claims all --work runs/claims",
        "```",
        "",
    ]
    if grid:
        lines += _grid_lines(grid)
    lines += [*texts.get("summary", []), ""]
    for command, parts in COMMANDS.items():
        paths = [(p, results_dir / f"{p}.json") for p in parts]
        found = [(p, load_json(path)) for p, path in paths if path.exists()]
        if not found:
            continue
        lines += HEADINGS.get(command, [])
        for part, results in found:
            section = _function(part, 2)(results, figures)
            if not any(line.startswith("READING: ") for line in section):
                section += ["", f"READING: {part}"]  # a part's reading follows its tables
            for line in section:
                if line.startswith("READING: "):
                    lines += texts.get(line.removeprefix("READING: ").strip(), ["(no reading written yet)"])
                else:
                    lines.append(line)
            lines += [
                "",
                f"Run time: {_minutes(results['wall_seconds'])} ({_workers(results['workers'])},"
                f" load average {results['load_average'][0]} before, {results['load_average'][1]} after);"
                f" measured {_measured(results)};"
                f" reproduce: `.venv/bin/python -m experiments.claims {command} --work runs/claims`.",
                "",
            ]
    lines = [line for i, line in enumerate(lines) if line.strip() or i == 0 or lines[i - 1].strip()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return lines


def train_grid_command(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> None:
    """Train every Multi30k model the experiments read (finished ones are reused)."""
    from experiments.claims.multi30k import train_grid, variants
    from experiments.claims.real import settings

    steps = settings(tiny)["steps"]
    train_grid(list(variants(steps)), seeds, steps, work, data, workers, tiny)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["all", "train", "report", *COMMANDS])
    parser.add_argument("--work", type=Path, default=Path("runs/claims"))
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "experiments.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where results are kept and read.")
    parser.add_argument("--figures", type=Path, default=None, help="Default: figures/ beside the report.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--workers", type=int, default=GRID_WORKERS, help="Models trained at a time (one thread each)."
    )
    parser.add_argument("--data", type=Path, default=None, help="Multi30k directory (default: shared data).")
    parser.add_argument("--books", type=Path, default=None, help="Books directory (default: shared data).")
    parser.add_argument("--tiny", action="store_true", help="A smoke run of seconds: tiny data and models.")
    args = parser.parse_args(argv)
    data = args.data or shared_data("multi30k")
    figures = args.figures or args.report.parent / "figures"
    without_multi30k = ("memory", "skipthought")
    needs_data = args.command in ("all", "train", *(c for c in COMMANDS if c not in without_multi30k))
    if needs_data and not (data / "train.de").exists():
        sys.exit(f"error: --data: {data / 'train.de'} not found (Multi30k with train/valid/test2016 .de/.en)")
    if args.command in ("all", "train"):
        train_grid_command(args.work, args.seeds, args.workers, args.tiny, data)
    for command, parts in COMMANDS.items():
        if args.command in ("all", command):
            for part in parts:
                run_part(part, args.work, args.results, args.seeds, args.workers, args.tiny, data, args.books)
    if args.command != "train":
        report(args.results, args.report, figures)
        log(f"wrote {args.report}")


if __name__ == "__main__":
    main()
