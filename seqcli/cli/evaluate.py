"""`seqcli evaluate`: BLEU and chrF of hypotheses against references."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def evaluate_command(
    hypotheses: str = typer.Argument("-", help="Hypothesis file, or - for stdin."),
    ref: Path = typer.Option(..., "--ref", help="Reference file, one line per hypothesis line."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    lowercase: bool = typer.Option(False, "--lowercase", help="Case-insensitive BLEU (sacreBLEU -lc)."),
    tokenize: str = typer.Option(
        "13a", "--tokenize", help="sacreBLEU's BLEU tokenizer: 13a, intl, char, zh or none."
    ),
) -> None:
    """Score detokenized hypotheses with sacreBLEU (BLEU, chrF) and exact match.

    The default is sacreBLEU's: cased, 13a. Older papers on Multi30k report lowercased BLEU on
    tokenized text; --lowercase (and --tokenize) give that flavour, and the signature says so.
    """
    from seqcli.metrics import score
    from seqcli.textio import read_lines

    references = read_lines(ref)
    scores = score(read_lines(hypotheses), references, str(ref), lowercase, tokenize)
    if as_json:
        typer.echo(json.dumps(scores.to_dict()))
        return
    typer.echo(f"BLEU = {scores.bleu:.2f}  ({scores.bleu_signature})")
    typer.echo(f"chrF = {scores.chrf:.2f}  ({scores.chrf_signature})")
    typer.echo(f"exact match = {scores.exact_match:.2f}%  ({scores.lines} lines)")
