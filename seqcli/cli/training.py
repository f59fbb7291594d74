"""Start, resume and report a training run: what `seqcli train` does once its configuration is built."""

from __future__ import annotations

import sys
from pathlib import Path

from seqcli.cli.progress import QuietReporter, RichReporter
from seqcli.config import Config
from seqcli.errors import UsageError


def run_training(config: Config, out: Path | None, resume: Path | None, device: str, note: str = "") -> None:
    """Train a new run in `out`, or continue the one in `resume`; any task (config.data.task).
    note: lines said on stderr once the run is set up (the preset and vocabulary chosen)."""
    from seqcli import distributed
    from seqcli.checkpoint import saved_machine
    from seqcli.finish import finish_run
    from seqcli.tasks import new_trainer, resume_trainer
    from seqcli.threads import use_threads

    # A resumed run keeps the thread count it was saved with, so that it continues exactly.
    saved_threads = saved_machine(resume).get("threads") if resume is not None else None
    threads = use_threads(config.train.threads, saved_threads)

    # Under torchrun: one process of a data-parallel job, left once training has ended.
    with distributed.torchrun_job(device) as device:
        is_main = distributed.current_world().is_main
        if resume is not None:
            trainer = resume_trainer(resume, config, device)
            for note in trainer.resume_notes if is_main else []:
                print(f"seqcli train: note: {note}", file=sys.stderr)
        else:
            if out is None:
                raise UsageError("--out: a new run directory is needed")
            if out.exists() and any(out.iterdir()):
                raise UsageError(
                    f"--out {out}: directory exists and is not empty; choose a new run directory"
                )
            trainer = new_trainer(config, out, device)
            for line in note.splitlines() if is_main else []:
                print(f"seqcli train: {line}", file=sys.stderr)
        if is_main:
            print(f"seqcli train: threads {threads.threads} ({threads.reason})", file=sys.stderr)
            for warning in trainer.task.warnings:
                print(f"seqcli train: warning: {warning}", file=sys.stderr)
        with RichReporter(trainer.run_dir, threads.governor) if is_main else QuietReporter() as reporter:
            trainer.run(reporter)
            finish_run(trainer, reporter)
        del trainer  # DistributedDataParallel must go before the process group it uses
