"""Training curves: RUN_DIR/curves.png (losses, and valid BLEU where logged, by step) from log.jsonl."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from seqcli.textio import atomic_open

CURVES_FILE = "curves.png"


def draw_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Plot train and valid loss of the evaluation records, and valid BLEU if the task logs it
    (translation does, skip-thought does not); write path atomically. Without matplotlib
    installed there is no picture, and nothing else is lost: log.jsonl holds every figure."""
    try:
        import matplotlib
    except ImportError:
        return

    matplotlib.use("Agg")  # no display: the file is the only output
    from matplotlib.figure import Figure

    steps = [r["step"] for r in records]
    has_bleu = all("valid_bleu" in r for r in records)
    figure = Figure(figsize=(9, 3.6) if has_bleu else (4.5, 3.6), layout="constrained")
    panels = figure.subplots(1, 2 if has_bleu else 1, squeeze=False)[0]
    losses = panels[0]
    losses.plot(steps, [r["train_loss"] for r in records], marker=".", label="train loss")
    losses.plot(steps, [r["valid_loss"] for r in records], marker=".", label="valid loss")
    losses.set_xlabel("step")
    losses.set_ylabel("loss per target token")
    losses.legend()
    if has_bleu:
        bleu = panels[1]
        bleu.plot(steps, [r["valid_bleu"] for r in records], marker=".", color="tab:green")
        bleu.set_xlabel("step")
        bleu.set_ylabel("valid BLEU")
    for axes in panels:
        axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
