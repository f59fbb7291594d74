"""`seqcli embed`: sentence vectors from a skip-thought run."""

from __future__ import annotations

from pathlib import Path

import typer

# Sentences read and embedded at a time: memory stays flat on long text streams.
EMBED_CHUNK_LINES = 2000


def embed_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by `seqcli train --task skip-thought`."),
    input_: str = typer.Option("-", "--input", help="Sentences, one per line, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Vectors as text, one line per sentence, or -."),
    npy: Path = typer.Option(None, "--npy", help="Write an (N, H) float32 .npy file instead of text."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(
        None, "--threads", help="Torch CPU threads [default: one per core other processes leave free]."
    ),
) -> None:
    """One skip-thought vector per input line (an empty line gets the zero vector)."""
    import numpy as np

    from seqcli.device import pick_device
    from seqcli.skipthought import SentenceEncoder
    from seqcli.textio import atomic_open, check_distinct_paths, open_input_chunks, open_output
    from seqcli.threads import use_threads

    check_distinct_paths([input_], output)
    if npy is not None:
        check_distinct_paths([input_], npy)
    governor = use_threads(threads).governor
    encoder = SentenceEncoder.from_run_dir(run_dir, pick_device(device))
    with open_input_chunks(input_, EMBED_CHUNK_LINES) as chunks:
        if npy is not None:  # one array: every line first
            parts = [np.zeros((0, encoder.size), dtype=np.float32)]
            parts += [encoder.embed(chunk) for chunk in chunks]  # each (n, H)
            with atomic_open(npy, "wb") as handle:
                np.save(handle, np.concatenate(parts))
            return
        # Text: each chunk (what has arrived when the input pauses) is written and flushed at once.
        with open_output(output) as out:
            for chunk in chunks:
                for row in encoder.embed(chunk):  # (n, H)
                    out.write(" ".join(f"{x:.6g}" for x in row) + "\n")
                out.flush()
                if governor is not None:
                    governor.check()
