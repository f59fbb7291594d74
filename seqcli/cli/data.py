"""`seqcli data`: the built-in generated task."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Get corpora: the built-in generated task.", no_args_is_help=True)


@app.command("toy")
def toy_command(
    out: Path = typer.Option(..., "--out", help="Directory for train/valid/test .src/.tgt files."),
    train: int = typer.Option(20000, help="Training pairs."),
    valid: int = typer.Option(500, help="Validation pairs."),
    test: int = typer.Option(1000, help="Test pairs."),
    seed: int = typer.Option(1, help="Random seed; the same seed gives the same files."),
) -> None:
    """Write the dates task (English/German dates -> ISO 8601) in corpus layout."""
    from seqcli.toydata import ToySplitSizes, write_toy_corpus

    paths = write_toy_corpus(out, ToySplitSizes(train, valid, test), seed)
    typer.echo(f"wrote {len(paths)} files to {out} (use --src-lang src --tgt-lang tgt)", err=True)
