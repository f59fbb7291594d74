"""`seqcli embed`: sentence vectors from a skip-thought run."""

from __future__ import annotations

from pathlib import Path

import typer


def embed_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `seqcli train --task skip-thought`."),
    input_: str = typer.Option("-", "--input", help="Sentences, one per line, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Vectors as text, one line per sentence, or -."),
    npy: Path = typer.Option(None, "--npy", help="Write an (N, H) float32 .npy file instead of text."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """One skip-thought vector per input line (an empty line gets the zero vector)."""
    import numpy as np

    from seqcli.device import pick_device
    from seqcli.skipthought import SentenceEncoder
    from seqcli.textio import atomic_open, check_distinct_paths, open_output, read_lines

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
