"""`seqcli tokenize train|encode|decode`: SentencePiece models as shell filters."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Train and apply SentencePiece models.", no_args_is_help=True)


@app.command("train")
def train_command(
    inputs: list[Path] = typer.Argument(..., help="Text files to learn from (several files: a joint model)."),
    model: Path = typer.Option(..., "--model", help="Where to write the model (e.g. joint.spm)."),
    vocab_size: int = typer.Option(8000, help="Vocabulary size (a soft limit on small data)."),
    type_: str = typer.Option("unigram", "--type", help="word, char, unigram or bpe."),
    character_coverage: float = typer.Option(1.0, help="Share of characters kept (0.9-1)."),
) -> None:
    """Train a SentencePiece model on one or more files."""
    from seqcli.config import TokenizerConfig
    from seqcli.errors import UsageError
    from seqcli.textio import check_distinct_paths, read_nonempty_file
    from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece

    if type_ == "auto":
        raise UsageError("--type auto: name the level here (word, char, unigram or bpe); train chooses one")
    checked = TokenizerConfig(type=type_, vocab_size=vocab_size, character_coverage=character_coverage)
    check_distinct_paths(list(inputs), model)
    lines = [line for path in inputs for line in read_nonempty_file(path)]
    spec = TokenizerSpec(checked.type, checked.vocab_size, checked.character_coverage)
    tokenizer = Tokenizer(train_sentencepiece(lines, spec), str(model))
    tokenizer.save(model)
    typer.echo(f"wrote {model}: {tokenizer.vocab_size} pieces from {len(lines)} lines", err=True)


def _filter(model: Path, input_: str, output: str, convert) -> None:
    """Stream input lines through convert (a list of lines -> a list of lines)."""
    from itertools import islice

    from seqcli.textio import check_distinct_paths, open_input, open_output
    from seqcli.tokenizer import Tokenizer

    check_distinct_paths([input_, model], output)
    tokenizer = Tokenizer.load(model)
    with open_input(input_) as lines, open_output(output) as out:
        while chunk := list(islice(lines, 1000)):
            out.writelines(line + "\n" for line in convert(tokenizer, chunk))
            out.flush()


@app.command("encode")
def encode_command(
    model: Path = typer.Option(..., "--model", help="SentencePiece model."),
    input_: str = typer.Option("-", "--input", help="Text file, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Output file, or - for stdout."),
    ids: bool = typer.Option(False, "--ids", help="Write piece ids instead of pieces."),
) -> None:
    """Text lines -> space-separated pieces (or ids), one line per line."""

    def convert(tokenizer, chunk):
        encoded = tokenizer.encode(chunk) if ids else tokenizer.encode_pieces(chunk)
        return [" ".join(map(str, pieces)) for pieces in encoded]

    _filter(model, input_, output, convert)


@app.command("decode")
def decode_command(
    model: Path = typer.Option(..., "--model", help="SentencePiece model."),
    input_: str = typer.Option("-", "--input", help="Piece (or id) lines, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Output file, or - for stdout."),
    ids: bool = typer.Option(False, "--ids", help="Read piece ids instead of pieces."),
) -> None:
    """Space-separated pieces (or ids) -> detokenized text, one line per line."""
    from seqcli.errors import DataError

    def convert(tokenizer, chunk):
        if not ids:
            return tokenizer.decode_pieces([line.split() for line in chunk])
        try:
            return tokenizer.decode([[int(i) for i in line.split()] for line in chunk])
        except ValueError:
            raise DataError(f"{input_}: --ids expects lines of integers") from None

    _filter(model, input_, output, convert)
