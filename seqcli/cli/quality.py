"""`seqcli average` and `seqcli tune-length-penalty`: quality levers applied after training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer


def average_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories trained with train.keep_checkpoints."),
    last: int = typer.Option(..., "--last", help="Average the last N step checkpoints of each run."),
    out: Path = typer.Option(..., "--out", help="New run directory for the averaged model."),
) -> None:
    """Average the weights of the last N evaluation checkpoints into a new run directory."""
    from seqcli.average import average_runs

    paths = average_runs(run_dirs, last, out)
    typer.echo(f"{out}: mean of {len(paths)} checkpoints ({', '.join(p.name for p in paths)})", err=True)


def tune_length_penalty_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `seqcli train`."),
    valid: str = typer.Option(..., "--valid", help="Validation corpus prefix (never a test set)."),
    alphas: str = typer.Option("0,0.2,0.4,0.6,0.8,1.0,1.2", help="Comma-separated alphas to try."),
    beam_size: int = typer.Option(None, "--beam-size", help="[default: from the run]"),
    save: bool = typer.Option(False, "--save", help="Store the best alpha in RUN_DIR/config.toml."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """Try GNMT length-penalty alphas with beam search on valid; print alpha, BLEU, chrF (TSV)."""
    from seqcli import checkpoint
    from seqcli.corpus import read_parallel
    from seqcli.device import pick_device
    from seqcli.errors import UsageError
    from seqcli.translate import Translator
    from seqcli.tune import best_alpha, tune_length_penalty

    try:
        values = [float(a) for a in alphas.split(",")]
    except ValueError:
        raise UsageError(f"--alphas {alphas}: expected comma-separated numbers, e.g. 0,0.6,1.0") from None
    translator = Translator.from_run_dir(run_dir, {"beam_size": beam_size}, pick_device(device))
    config = checkpoint.load_config(run_dir)
    src, tgt = read_parallel(valid, config.data.src_lang, config.data.tgt_lang)
    results = tune_length_penalty(translator, src, tgt, values)
    typer.echo("alpha\tBLEU\tchrF")
    for result in results:
        typer.echo(f"{result.alpha:g}\t{result.scores.bleu:.2f}\t{result.scores.chrf:.2f}")
    best = best_alpha(results)
    typer.echo(
        f"best alpha {best.alpha:g} (BLEU {best.scores.bleu:.2f}, {best.scores.bleu_signature})", err=True
    )
    if save:
        checkpoint.save_config(
            run_dir, replace(config, decode=replace(config.decode, length_penalty=best.alpha))
        )
