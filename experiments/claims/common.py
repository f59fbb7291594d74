"""What every claims experiment shares: training one seqcli model, seeds in parallel worker
processes, mean and spread, Markdown tables, figures and result files."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "docs" / "figures"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_model(config: dict[str, Any], run_dir: Path, tokenizer_model: str = "") -> dict[str, Any]:
    """Train one seqcli model into run_dir, or reuse it when a finished run is there; a run
    stopped part-way (an experiment interrupted) goes on exactly from its last saved state.

    Returns the run's record: seconds (wall-clock; for a resumed run, its training time before
    and after, validation excluded), updates, parameters and target tokens per second.
    """
    done = run_dir / "done.json"
    if done.exists():
        return load_json(done)
    import torch

    from seqcli.checkpoint import TRAIN_STATE
    from seqcli.cli.progress import QuietReporter
    from seqcli.config import config_from_dict
    from seqcli.tasks import new_trainer, resume_trainer

    torch.set_num_threads(1)
    if tokenizer_model:
        config = {**config, "tokenizer": {**config.get("tokenizer", {}), "src_model": tokenizer_model}}
    start = time.monotonic()
    settings = config_from_dict(config)
    resumed = (run_dir / TRAIN_STATE).exists()
    trainer = resume_trainer(run_dir, settings, "cpu") if resumed else new_trainer(settings, run_dir, "cpu")
    resumed_at = trainer.loop.step
    summary = trainer.run(QuietReporter())
    seconds = summary.elapsed_seconds if resumed else time.monotonic() - start
    record = {
        **({"resumed_at_step": resumed_at} if resumed else {}),
        "seconds": round(seconds, 1),
        "updates": summary.steps,
        "parameters": summary.parameters,
        "best_step": summary.best_step,
        "best_valid": summary.best_value,
        "load_average": os.getloadavg()[0],
    }
    write_json(done, record)
    log(f"  trained {run_dir.name}: {summary.steps} updates, {seconds:.0f} s")
    return record


def in_workers(function: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int) -> list[Any]:
    """function(*job) for every job, `workers` processes at a time (one torch thread each)."""
    if workers <= 1 or len(jobs) <= 1:
        return [function(*job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, *zip(*jobs, strict=True)))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: Sequence[float], digits: int = 1) -> str:
    """'mean ± sd' of the seeds' values."""
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def new_figure(width: float = 6.4, height: float = 4.0, columns: int = 1) -> Any:
    """A matplotlib figure (no display needed) and its axes: one, or a row of `columns`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width, height))
    return figure, axes


def save_figure(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_with_spread(axes: Any, x: Sequence[float], runs: Sequence[Sequence[float]], label: str) -> None:
    """Mean line over seeds with a band from the lowest to the highest seed."""
    columns = list(zip(*runs, strict=True))
    means = [statistics.fmean(c) for c in columns]
    line = axes.plot(x, means, marker="o", label=label)[0]
    axes.fill_between(
        x, [min(c) for c in columns], [max(c) for c in columns], color=line.get_color(), alpha=0.2
    )
