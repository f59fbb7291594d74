"""`seqcli serve`: translations over HTTP, concurrent requests searched together."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def serve_command(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directory written by `seqcli train`; several make an ensemble."
    ),
    side_by_side: bool = typer.Option(
        False,
        "--side-by-side",
        help="Serve several run directories each on its own (the explorer compares them) instead of "
        "as an ensemble; requests name one with `run`, the first by default.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port to listen on; 0 picks a free one."),
    beam_size: int = typer.Option(None, "--beam-size", help="Default for requests; 1 = greedy."),
    batch_size: int = typer.Option(None, "--batch-size", help="Sentences per search batch."),
    max_beam_size: int = typer.Option(16, help="Requests asking for a larger beam are refused (422)."),
    max_lines: int = typer.Option(64, help="Lines per request; more are refused (413)."),
    max_chars: int = typer.Option(20_000, help="Characters per request; more are refused (413)."),
    max_batch_lines: int = typer.Option(256, help="Lines of concurrent requests searched together, at most."),
    max_wait_ms: float = typer.Option(5.0, help="How long an idle model waits for more requests to join."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    quantize: bool = typer.Option(
        False, "--quantize", help="int8 dynamic quantization of linear and LSTM/GRU layers (CPU only)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request on stderr."),
    threads: int = typer.Option(
        None, "--threads", help="Torch CPU threads [default: one per core other processes leave free]."
    ),
) -> None:
    """Serve translations: the explorer page at /, POST /translate and /score, GET /runs, /health,
    /info; the API at /docs. Ctrl-C or SIGTERM stops gracefully, after the requests in flight."""
    from seqcli.cli.translate import load_translator
    from seqcli.errors import UsageError
    from seqcli.threads import use_threads

    for name, value in [("--max-beam-size", max_beam_size), ("--max-lines", max_lines),
                        ("--max-chars", max_chars), ("--max-batch-lines", max_batch_lines)]:  # fmt: skip
        if value < 1:
            raise UsageError(f"{name}: {value} must be at least 1")
    if max_wait_ms < 0:
        raise UsageError(f"--max-wait-ms: {max_wait_ms} must not be negative")
    try:
        from seqcli.server import app, listen
    except ImportError as error:  # fastapi or uvicorn missing
        raise UsageError(
            f"seqcli serve needs the serve extra: pip install 'seqcli[serve]' ({error})"
        ) from None

    choice = use_threads(threads)
    overrides: dict[str, object] = {"beam_size": beam_size, "batch_size": batch_size}
    if side_by_side:
        runs = [
            app.ServedRun(run_dir, load_translator([run_dir], overrides, device, quantize, bf16=False))
            for run_dir in run_dirs
        ]
        translator = runs[0].translator
    else:
        translator = load_translator(run_dirs, overrides, device, quantize, bf16=False)
        runs = app.served_runs(translator, run_dirs)
    sock = listen.bind(host, port)
    limits = app.Limits(max_lines=max_lines, max_chars=max_chars, max_beam_size=max_beam_size)
    batching = app.Batching(max_lines=max_batch_lines, max_wait_ms=max_wait_ms)

    def keep_threads() -> None:  # the count follows the free cores, between batches
        note = choice.governor.check() if choice.governor is not None else None
        if note:
            print(f"seqcli serve: {note}", file=sys.stderr, flush=True)

    served = app.create_app(translator, run_dirs, limits, batching, keep_threads, runs)
    ready = f"seqcli serve: listening on {listen.url(sock)}, threads {choice.threads} ({choice.reason})"
    listen.run(served, sock, access_log, ready)
