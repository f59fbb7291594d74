"""`seqcli embed`: sentence vectors from a skip-thought run; and the skip-thought branch of train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seqcli.cli.train import RichReporter
from seqcli.config import Config
from seqcli.errors import UsageError


def embed_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `seqcli train --task skip-thought`."),
    input_: str = typer.Option("-", "--input", help="Sentences, one per line, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Vectors as text, one line per sentence, or -."),
    npy: Path = typer.Option(None, "--npy", help="Write an (N, H) float32 .npy file instead of text."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """One skip-thought vector per input line (an empty line gets the zero vector)."""
    import numpy as np

    from seqcli.skipthought import SentenceEncoder
    from seqcli.textio import atomic_open, check_distinct_paths, open_output, read_lines
    from seqcli.train import pick_device

    check_distinct_paths([input_], output)
    encoder = SentenceEncoder.from_run_dir(run_dir, pick_device(device))
    vectors = encoder.embed(read_lines(input_))  # (N, H)
    if npy is not None:
        check_distinct_paths([input_], npy)
        with atomic_open(npy, "wb") as handle:
            np.save(handle, vectors)  # type: ignore[arg-type]
        return
    with open_output(output) as out:
        for row in vectors:
            out.write(" ".join(f"{x:.6g}" for x in row) + "\n")


def train_skip_thought(config: Config, out: Path | None, device: str) -> None:
    """`seqcli train --task skip-thought`: train and report on stderr."""
    from seqcli.skipthought import SkipThoughtTrainer
    from seqcli.train import pick_device

    if out is None:
        raise UsageError("--out: skip-thought training needs a new run directory")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: directory exists and is not empty; choose a new run directory")
    typer.echo("seqcli train: reading the sentences and preparing the tokenizer", err=True)
    trainer = SkipThoughtTrainer(config, out, pick_device(device))
    with SkipThoughtRichReporter() as reporter:
        trainer.run(reporter)


class SkipThoughtRichReporter(RichReporter):
    """The training progress bar, with skip-thought's validation line."""

    def __enter__(self) -> SkipThoughtRichReporter:
        self.progress.start()
        return self

    def on_evaluation(self, evaluation: Any) -> None:
        best = " (best)" if evaluation.is_best else ""
        self.console.print(
            f"step {evaluation.step}: train loss {evaluation.train_loss:.3f}, "
            f"valid loss {evaluation.valid_loss:.3f}{best}"
        )

    def on_end(self, summary: Any) -> None:
        self.console.print(
            f"done after {summary.steps} steps ({summary.stop_reason}, {summary.elapsed_seconds:.0f} s): "
            f"best valid loss {summary.best_valid_loss:.3f} at step {summary.best_step}"
        )
