"""The seqcli command: a thin Typer layer over the library.

Library errors become one line on stderr and exit code 1 (2 for usage errors); --debug
(or SEQCLI_DEBUG=1) shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from seqcli import threads
from seqcli.cli import data, embed, evaluate, quality, serve, tokenize, train, translate
from seqcli.errors import SeqcliError

app = typer.Typer(
    name="seqcli",
    help="Recurrent sequence-to-sequence models from the shell: tokenize, train, translate, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(tokenize.app, name="tokenize")
app.command("train")(train.train_command)
app.command("translate")(translate.translate_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("embed")(embed.embed_command)
app.command("serve")(serve.serve_command)
app.command("average")(quality.average_command)
app.command("tune-length-penalty")(quality.tune_length_penalty_command)

_debug = {"on": os.environ.get("SEQCLI_DEBUG") == "1"}

# oneDNN, which runs torch's fused LSTM and GRU kernels on a CPU, keeps the kernel it builds for
# each input shape, up to 1,024 of them. Training meets a new shape with nearly every batch
# (another length, another number of rows), so the cache only grew: about 3 MB a shape for a
# bidirectional LSTM of 256, and no faster for it. 16 kernels keep decoding's few repeating
# shapes; benchmarks/train_memory.py measures a recipe's memory over its training time.
ONEDNN_CACHE_CAPACITY = "16"


def bound_kernel_cache() -> None:
    """Cap oneDNN's kernel cache for this process and those it starts, unless the user set it;
    oneDNN reads the variable when it first builds a kernel, so before any computation."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Recurrent sequence-to-sequence models from the shell."""
    _debug["on"] = _debug["on"] or debug


def main() -> None:
    threads.sample_cpu_use()  # before torch loads: how busy the machine is (seqcli.threads)
    bound_kernel_cache()
    try:
        app()
    except SeqcliError as error:
        if _debug["on"]:
            raise
        print(f"seqcli: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("seqcli: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except OSError as error:  # a full disk, a permission, a vanished file: the system's words
        if _debug["on"]:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"seqcli: error: {where}{error.strerror or error}", file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        if _debug["on"]:
            raise
        first_line = next(iter(str(error).splitlines()), "")
        print(
            f"seqcli: internal error: {type(error).__name__}: {first_line}"
            " (run with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
