"""8. The minimal cells beside the LSTM and GRU at one time budget on Multi30k.

Each cell trains the de-en CPU recipe (configs/multi30k-de-en-cpu.toml) with only `model.cell`
changed and the budget set to MINUTES, as `seqcli train` would for a user: the same seeds, one
torch thread per run, each run beside one other training process on two cores (two runs of
this part with --workers 2, or one and something else), so every cell meets the same load.
After training the run keeps its best checkpoint or the mean of its last five, whichever
scores higher on valid, and tunes its length penalty on valid; test2016 is then translated
once, greedy and beam 5, and scored. Each run takes the whole budget, so this part trains the
first two of the seeds given. A run already finished in WORK/cells/CELL is reused.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from experiments.claims.common import new_figure, save_figure, spread, table
from experiments.multi30k_cpu import final_summary, run_final, run_name
from seqcli.checkpoint import read_log

CELLS = {"lstm": "LSTM", "gru": "GRU", "mingru": "minGRU", "minlstm": "minLSTM"}
DIRECTION = "de-en"
TEST = "test2016"


def settings(tiny: bool) -> dict[str, Any]:
    """The budget in minutes and any further changes to the recipe: the report's, or a smoke
    run of seconds with a small vocabulary and model."""
    if tiny:
        small = ["tokenizer.vocab_size=60", "model.embedding_size=16", "model.hidden_size=16"]
        return {"minutes": 0.05, "changes": [*small, "train.eval_every=2", "train.max_steps=4"]}
    return {"minutes": 20.0, "changes": []}


def cell_work(work: Path, cell: str, tiny: bool) -> Path:
    return work / "cells" / ("tiny" if tiny else "") / cell


def train_and_score(cell: str, seed: int, work: Path, data: Path, tiny: bool) -> None:
    """One run: trained for the budget, then test2016 scored greedy and beam 5 (record in
    WORK/cells/CELL/de-en-seedN.json, written last)."""
    out = cell_work(work, cell, tiny)
    out.mkdir(parents=True, exist_ok=True)
    budget = settings(tiny)
    changes = [f"model.cell={cell}", f"train.max_minutes={budget['minutes']:g}", *budget["changes"]]
    run_final(DIRECTION, seed, data, out, changes, tests=(TEST,))


def run(work: Path, seeds: list[int], workers: int, tiny: bool, data: Path) -> dict[str, Any]:
    seeds = seeds[:2]
    jobs = [(cell, seed) for cell in CELLS for seed in seeds]  # a cell's seeds side by side
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: train_and_score(job[0], job[1], work, data, tiny), jobs))
    runs = {cell: [summary(cell, seed, work, tiny) for seed in seeds] for cell in CELLS}
    return {"minutes": settings(tiny)["minutes"], "direction": DIRECTION, "seeds": seeds, "runs": runs}


def _final_valid(run: dict[str, Any]) -> float:
    """Valid BLEU (greedy) of the checkpoint the run kept: its best, or the mean of its last five."""
    averaged = run["finish"].get("averaging", {}).get("valid_bleu", 0.0)
    return float(max(run["best_valid_bleu"], averaged))


def summary(cell: str, seed: int, work: Path, tiny: bool) -> dict[str, Any]:
    """A finished run's record, its valid curve and the median training speed of its evaluations."""
    out = cell_work(work, cell, tiny)
    name = run_name(DIRECTION, seed)
    speeds = sorted(r["target_tokens_per_second"] for r in read_log(out / name))
    return {**final_summary(name, out), "target_tokens_per_second": speeds[len(speeds) // 2]}


def section(results: dict[str, Any], figures: Path) -> list[str]:
    rows = []
    figure, axes = new_figure(6.4, 4.0)
    for i, (cell, label) in enumerate(CELLS.items()):
        runs = results["runs"][cell]
        rows.append(
            [
                label,
                f"{statistics.fmean(r['parameters'] for r in runs) / 1e6:.2f}M",
                f"{statistics.fmean(r['updates'] for r in runs):,.0f}",
                f"{statistics.fmean(r['target_tokens_per_second'] for r in runs):,.0f}",
                spread([r["best_valid_bleu"] for r in runs], 2),
                spread([_final_valid(r) for r in runs], 2),
                spread([r["scores"][f"{TEST}.beam1"]["bleu"] for r in runs], 2),
                spread([r["scores"][f"{TEST}.beam5"]["bleu"] for r in runs], 2),
            ]
        )
        for j, run in enumerate(runs):
            steps, bleus = zip(*run["valid_curve"], strict=True)
            axes.plot(steps, bleus, color=f"C{i}", alpha=0.8, label=label if j == 0 else None)
    axes.set_xlabel("update")
    axes.set_ylabel("valid BLEU, greedy")
    axes.set_title(f"Each cell for {results['minutes']:g} minutes: every seed's valid curve")
    axes.legend()
    save_figure(figure, figures / "cells-multi30k.png")
    header = [
        "cell", "parameters", "updates", "target tok/s", "valid BLEU, best single", "valid BLEU, kept",
        f"{TEST} greedy", f"{TEST} beam 5",
    ]  # fmt: skip
    return [
        "## 8. The minimal cells at one time budget: minGRU and minLSTM beside the LSTM and GRU",
        "",
        f"Multi30k {results['direction'].replace('-', '->')}, the CPU recipe with only the cell changed,"
        f" {results['minutes']:g} minutes of training per run, seeds {', '.join(map(str, results['seeds']))}"
        " (one torch thread per run, each beside one other training process on the two cores)."
        " 'Kept' is the checkpoint the run ends with: its best, or the mean of its last five if that"
        " scores higher on valid. test2016 is translated"
        " once per run, with the length penalty the run tuned on valid; cased sacreBLEU, mean ± sd over"
        " the seeds.",
        "",
        *table(header, rows),
        "![valid BLEU of every cell over its updates](figures/cells-multi30k.png)",
    ]
