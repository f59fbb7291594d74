"""Training progress on stderr: a rich progress bar, one line per validation, RUN_DIR/curves.png."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seqcli.checkpoint import read_log
from seqcli.curves import CURVES_FILE, draw_curves
from seqcli.threads import ThreadGovernor


class QuietReporter:
    """Ranks other than 0 under torchrun: rank 0 alone reports."""

    def __enter__(self) -> QuietReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def on_start(self, max_steps: int, info: dict[str, object]) -> None:
        pass

    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None:
        pass

    def on_evaluation(self, evaluation: Any) -> None:
        pass

    def on_end(self, summary: Any) -> None:
        pass

    def on_note(self, text: str) -> None:
        pass


class RichReporter:
    """Progress bar with loss, tokens/second and ETA on stderr; one line per evaluation. Between
    updates it lets the governor, if any, keep the thread count at the free cores."""

    def __init__(self, run_dir: Path, governor: ThreadGovernor | None = None) -> None:
        self.run_dir, self.governor = run_dir, governor
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("{task.fields[speed]:,.0f} tok/s"),
            TextColumn("gold p {task.fields[gold]:.2f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("train", total=1, loss=0.0, speed=0.0, gold=1.0)
        # A log file gets no live bar, so it gets a progress line now and then instead.
        self.line_every = 0.0 if self.console.is_terminal else 30.0
        self.last_line = time.monotonic()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, max_steps: int, info: dict[str, object]) -> None:
        self.progress.update(self.task, total=max_steps)
        details = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in info.items())
        self.console.print(f"seqcli train: {details}")

    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None:
        self.progress.update(
            self.task, completed=step, loss=loss, speed=tokens_per_second, gold=gold_probability
        )
        note = self.governor.check() if self.governor is not None else None
        if note:
            self.console.print(f"step {step}: {note}")

    def on_evaluation(self, evaluation: Any) -> None:
        best = " (best)" if evaluation.is_best else ""
        measures = ", ".join(_show(name, value) for name, value in evaluation.measures.items())
        train = f"train loss {evaluation.train_loss:.3f}"
        self.console.print(f"step {evaluation.step}: {train}, {measures}{best}")
        # Derived from log.jsonl, which the loop has written: a kill while plotting loses nothing.
        draw_curves(read_log(self.run_dir), self.run_dir / CURVES_FILE)

    def on_note(self, text: str) -> None:
        self.console.print(text)

    def on_end(self, summary: Any) -> None:
        self.console.print(
            f"done after {summary.steps} steps ({summary.stop_reason}, {summary.elapsed_seconds:.0f} s): "
            f"best {_show(summary.best_measure, summary.best_value)} at step {summary.best_step}"
        )


# How a task's validation measures read on the console: label and format. Others show as named.
MEASURE_FORMATS = {
    "valid_loss": "valid loss {:.3f}",
    "valid_bleu": "valid BLEU {:.2f}",
    "valid_chrf": "chrF {:.2f}",
    "valid_exact_match": "exact {:.1f}%",
}


def _show(name: str, value: float) -> str:
    return MEASURE_FORMATS.get(name, name.replace("_", " ") + " {:.4g}").format(value)
