"""`seqcli translate`: raw text in, translations out, one line per line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from seqcli.translate import Translator


def translate_command(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directory written by `seqcli train`; several make an ensemble."
    ),
    input_: str = typer.Option("-", "--input", help="Source text file, or - for stdin."),
    output: str = typer.Option("-", "--output", help="Output file, or - for stdout."),
    beam_size: int = typer.Option(None, "--beam-size", help="1 = greedy. [default: from the run]"),
    batch_size: int = typer.Option(None, "--batch-size", help="Sentences per batch."),
    n_best: int = typer.Option(None, "--n-best", help="Hypotheses per line, tab-separated, best first."),
    length_penalty: float = typer.Option(None, "--length-penalty", help="GNMT alpha; 0 = off."),
    max_length_ratio: float = typer.Option(None, help="Output at most ratio * source pieces + offset."),
    attention_plot: Path = typer.Option(
        None, "--attention-plot", help="Directory for one attention heatmap PNG per line (NNNNNN.png)."
    ),
    alignments: str = typer.Option(
        None, "--alignments", help="File for hard alignments, Pharaoh 'src-tgt' pairs, one line per line."
    ),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    quantize: bool = typer.Option(
        False, "--quantize", help="int8 dynamic quantization of linear and LSTM/GRU layers (CPU only)."
    ),
    bf16: bool = typer.Option(
        False, "--bf16", help="bfloat16 autocast in the search (CUDA GPU, or CPU with AVX-512 BF16/AMX)."
    ),
    timings: bool = typer.Option(
        False, "--timings", help="Report lines and search time (generation only) on stderr at the end."
    ),
    threads: int = typer.Option(
        None, "--threads", help="Torch CPU threads [default: one per core other processes leave free]."
    ),
) -> None:
    """Translate raw text lines; an empty line gives an empty line."""
    from seqcli import distributed
    from seqcli.errors import UsageError
    from seqcli.textio import check_distinct_paths, open_input_chunks, open_output
    from seqcli.threads import use_threads
    from seqcli.translate import STREAM_CHUNK_LINES

    check_distinct_paths([input_], output)
    governor = use_threads(threads).governor
    overrides: dict[str, object] = {
        "beam_size": beam_size,
        "batch_size": batch_size,
        "n_best": n_best,
        "length_penalty": length_penalty,
        "max_length_ratio": max_length_ratio,
    }
    with distributed.torchrun_job(device) as device:  # every return below leaves the job once
        if len(run_dirs) > 1 and (attention_plot is not None or alignments is not None):
            raise UsageError("--attention-plot/--alignments: need a single run directory, not an ensemble")
        translator = load_translator(run_dirs, overrides, device, quantize, bf16)
        world = distributed.current_world()
        if not world.is_main:  # under torchrun: translate the shares rank 0 deals out; rank 0 writes
            if attention_plot is None and alignments is None:  # attention output: rank 0 works alone
                for _ in distributed.translate_chunks_in_shares(translator.translate_chunk, (), world):
                    pass
            return
        if attention_plot is not None or alignments is not None:  # one process: a forced pass per batch
            from seqcli.alignment import write_attention

            check_distinct_paths([input_], alignments or "-")
            with (
                open_input_chunks(input_, STREAM_CHUNK_LINES) as chunks,
                open_output(output) as out,
                open_output(alignments or "-") as links,
            ):
                write_attention(translator, chunks, out, attention_plot, links if alignments else None)
            return
        # Each chunk is what has arrived when the input pauses (a full chunk from a file), so a
        # line typed or piped in alone is answered at once; the flush hands the answer on.
        with open_input_chunks(input_, STREAM_CHUNK_LINES * world.size) as chunks, open_output(output) as out:
            for translations in distributed.translate_chunks_in_shares(
                translator.translate_chunk, chunks, world
            ):
                out.writelines(line + "\n" for line in translations)
                out.flush()
                if governor is not None:
                    governor.check()
        if timings:
            _report_timings(translator)


def load_translator(
    run_dirs: list[Path], overrides: dict[str, object], device: str, quantize: bool, bf16: bool
) -> Translator:
    """One run directory's model, or an ensemble of several, with the search options asked for."""
    from seqcli.device import pick_device
    from seqcli.errors import UsageError
    from seqcli.translate import Translator

    if len(run_dirs) > 1:
        from seqcli.ensemble import ensemble_translator

        if quantize:
            raise UsageError("--quantize: not available for ensembles; quantize a single run directory")
        translator = ensemble_translator(run_dirs, overrides, pick_device(device))
    else:
        translator = Translator.from_run_dir(run_dirs[0], overrides, pick_device(device), quantize)
    if bf16:
        if quantize:
            raise UsageError("--bf16: not with --quantize; choose one")
        translator.use_bf16()
    return translator


def _report_timings(translator: Translator) -> None:
    """One stderr line: how many sentences this process searched and how long the search took."""
    import sys

    import torch

    seconds, count = translator.generation_seconds, translator.sentences_searched
    rate = count / seconds if seconds > 0 else 0.0
    print(
        f"seqcli translate: {count} lines, generation {seconds:.3f} s ({rate:.1f} lines/s), "
        f"threads {torch.get_num_threads()}",
        file=sys.stderr,
    )
