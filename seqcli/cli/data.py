"""`seqcli data`: the built-in generated tasks, Multi30k, and raw books split into sentences."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Get corpora: the built-in generated task; Multi30k; books as sentences.", no_args_is_help=True
)


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


@app.command("generate")
def generate_command(
    task: str = typer.Argument(
        ..., help="commands (a command language to actions) or symbols (letters to sounds)."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for train/valid/test .src/.tgt files."),
    split: str = typer.Option(
        "random", help="commands: random, or length (test outputs longer than any training output)."
    ),
    words: int = typer.Option(50000, help="symbols: distinct pseudo-words in all splits."),
    seed: int = typer.Option(1, help="Random seed; the same seed gives the same files."),
) -> None:
    """Write a generated task of a shape natural-language corpora lack (seqcli/generated.py)."""
    from seqcli.errors import UsageError
    from seqcli.generated import split_commands, split_symbols, write_splits

    if task == "commands":
        if split not in ("random", "length"):
            raise UsageError(f"--split {split}: expected random or length")
        splits = split_commands(split, seed)
    elif task == "symbols":
        if words < 100:
            raise UsageError(f"--words {words}: at least 100")
        splits = split_symbols(words, seed)
    else:
        raise UsageError(f"data generate {task}: unknown task (known: commands, symbols)")
    write_splits(out, splits)
    sizes = ", ".join(f"{name} {len(pairs):,}" for name, pairs in splits.items())
    typer.echo(f"wrote {out}: {sizes} pairs (use --src-lang src --tgt-lang tgt)", err=True)


@app.command("fetch")
def fetch_command(
    corpus: str = typer.Argument(..., help="The corpus to download: multi30k."),
    out: Path = typer.Option(
        ..., "--out", help="Directory for PREFIX.LANG files (train, valid, test2016, ...)."
    ),
    base_url: str = typer.Option(None, "--base-url", help="Download from here instead of GitHub."),
    timeout: float = typer.Option(60.0, help="Seconds to wait on the network before giving up."),
) -> None:
    """Download Multi30k task 1 (en, de, fr, cs), check every sha256, write the files atomically."""
    from seqcli.errors import UsageError
    from seqcli.fetch import MULTI30K_BASE_URL, fetch_all, multi30k_manifest

    if corpus != "multi30k":
        raise UsageError(f"data fetch {corpus}: unknown corpus (known: multi30k)")
    downloaded, present = fetch_all(multi30k_manifest(), base_url or MULTI30K_BASE_URL, out, timeout)
    typer.echo(
        f"{out}: {len(downloaded)} files downloaded, {len(present)} already there and correct "
        "(use --src-lang de --tgt-lang en, prefixes train, valid, test2016, test2017)",
        err=True,
    )


@app.command("sentences")
def sentences_command(
    books: list[Path] = typer.Argument(..., help="Raw text files (e.g. Project Gutenberg books)."),
    output: str = typer.Option("-", "--output", help="Output file, or - for stdout."),
) -> None:
    """Split raw books into one sentence per line; a blank line ends each book (a document)."""
    from seqcli.sentences import book_sentences
    from seqcli.textio import check_distinct_paths, open_output, read_lines

    check_distinct_paths(list(books), output)
    with open_output(output) as out:
        for book in books:
            out.writelines(sentence + "\n" for sentence in book_sentences(read_lines(book)))
            out.write("\n")
