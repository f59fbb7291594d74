"""Bidirectional vs unidirectional encoder on seqcli's built-in dates task, over seeds.

Dates written in 23 English and German formats -> ISO 8601. Some formats put the year or the
month name after the day, so the first output tokens depend on source words further right.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from experiments.claims.common import new_figure, save_figure, spread, table, write_json
from experiments.claims.synthetic import (
    DIRECTIONS_MODEL,
    ENCODERS,
    Scale,
    run_config,
    run_grid,
    run_summary,
    train_and_translate,
)

DATES_SCALE = Scale(train_pairs=8000, valid_pairs=100, test_per_bucket=500, updates=1200, batch_tokens=1200)
TINY_DATES = Scale(train_pairs=200, valid_pairs=10, test_per_bucket=20, updates=5, batch_tokens=400)


def root_of(work: Path, tiny: bool) -> Path:
    return work / "dates" / "tiny" if tiny else work / "dates"


def dates_job(encoder: str, seed: int, root: Path, scale: Scale) -> dict[str, Any]:
    """Train one dates model and score its greedy outputs: exact match (%) on the test split."""
    from seqcli.metrics import exact_match
    from seqcli.textio import read_lines

    data = root / "data"
    config = run_config(data, {**DIRECTIONS_MODEL, "bidirectional": ENCODERS[encoder]}, scale, seed)
    record, hyps = train_and_translate(config, root / f"{encoder}-seed{seed}", data)
    return run_summary(encoder, seed, record, {"exact": [exact_match(hyps, read_lines(data / "test.tgt"))]})


def run(work: Path, seeds: list[int], workers: int, tiny: bool) -> dict[str, Any]:
    from seqcli.toydata import ToySplitSizes, write_toy_corpus

    scale = TINY_DATES if tiny else DATES_SCALE
    root = root_of(work, tiny)
    if not (root / "data" / "test.tgt").exists():
        sizes = ToySplitSizes(train=scale.train_pairs, valid=scale.valid_pairs, test=scale.test_per_bucket)
        write_toy_corpus(root / "data", sizes, seed=3)
    runs = run_grid(dates_job, list(ENCODERS), seeds, root, scale, workers)
    results = {"scale": scale.__dict__, "model": DIRECTIONS_MODEL, "seeds": seeds, "runs": runs}
    write_json(work / "dates" / "results.json", results)
    return results


def section(results: dict[str, Any], figures: Path) -> list[str]:
    scale, model = results["scale"], results["model"]
    rows = []
    figure, axes = new_figure(4.5, 3.5)
    for i, encoder in enumerate(ENCODERS):
        runs = [r for r in results["runs"] if r["config"] == encoder]
        exact = [r["exact"][0] for r in runs]
        rows.append([encoder, spread(exact), f"{min(exact):.1f}-{max(exact):.1f}",
                     f"{statistics.fmean(r['seconds'] for r in runs):.0f}"])  # fmt: skip
        axes.scatter([i] * len(exact), exact, color=f"C{i}")
        axes.hlines(statistics.fmean(exact), i - 0.2, i + 0.2, color="black")
    axes.set_xticks(range(len(ENCODERS)), list(ENCODERS))
    axes.set_xlim(-0.6, len(ENCODERS) - 0.4)
    axes.set_ylabel("test exact match (%)")
    axes.set_title("Dates task: each seed and the mean")
    save_figure(figure, figures / "directions-dates.png")
    return [
        "### The dates task",
        "",
        f"seqcli's built-in task (dates in 23 English/German formats -> ISO 8601), {scale['train_pairs']:,}"
        f" training pairs, {scale['test_per_bucket']} test pairs. {model['cell'].upper()} with Luong"
        f" {model['attention']} attention, hidden {model['hidden_size']} (bidirectional: half per direction),"
        f" {scale['updates']} updates of about {scale['batch_tokens']:,} tokens, greedy; seeds"
        f" {', '.join(map(str, results['seeds']))}.",
        "",
        *table(["encoder", "exact match (%)", "seed range", "seconds"], rows),
        "![Dates task exact match per seed](figures/directions-dates.png)",
        "",
        "READING: dates",
    ]
