"""Checkpoint averaging: the mean of the last N evaluation checkpoints of runs, as a new run directory."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from seqcli import checkpoint
from seqcli.errors import RunDirError, UsageError
from seqcli.model.seq2seq import Seq2Seq

_STEP_FILE = re.compile(r"step-(\d+)\.safetensors")


def step_checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The step-numbered checkpoints (train.keep_checkpoints) of a run, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def prune_step_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints."""
    paths = step_checkpoints(run_dir)
    for path in paths[: max(len(paths) - keep, 0)]:
        path.unlink(missing_ok=True)


def average_tensors(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same names and shapes (float64 sums)."""
    averaged = {}
    for name, first in states[0].items():
        total = sum(state[name].double() for state in states)
        averaged[name] = (total / len(states)).to(first.dtype)  # type: ignore[union-attr]
    return averaged


def average_runs(run_dirs: list[Path], last: int, out: Path) -> list[Path]:
    """Average the last `last` step checkpoints of each run into the new run directory `out`.

    The runs must share the model settings and tokenizers (e.g. one run, or runs resumed from
    one another). `out` gets the first run's config and tokenizers, and the mean weights as
    both best and last. Returns the checkpoints averaged.
    """
    if last < 1:
        raise UsageError(f"--last {last}: must be at least 1")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: directory exists and is not empty; choose a new run directory")
    chosen: list[tuple[Path, list[Path]]] = []  # (run, its checkpoints), all checked before any is read
    for run_dir in run_dirs:
        kept = step_checkpoints(run_dir)
        if not kept:
            raise RunDirError(f"{run_dir}: no step checkpoints; train with --set train.keep_checkpoints=N")
        if len(kept) < last:
            raise RunDirError(f"{run_dir}: kept {len(kept)} step checkpoints, fewer than --last {last}")
        chosen.append((run_dir, kept[-last:]))
    # each run's config and tokenizers, read once; the first run's are the ones all must share
    settings = {
        run_dir: (checkpoint.load_config(run_dir), *checkpoint.load_tokenizers(run_dir))
        for run_dir in dict.fromkeys(run_dirs)
    }
    config, src, tgt = settings[run_dirs[0]]
    states = []
    for run_dir, run_paths in chosen:
        run_config, run_src, run_tgt = settings[run_dir]
        if (run_config.model, run_src.sha256, run_tgt.sha256) != (config.model, src.sha256, tgt.sha256):
            raise RunDirError(f"{run_paths[0]}: model settings or tokenizers differ from {run_dirs[0]}")
        states += [checkpoint.load_weights(path, run_src, run_tgt)[0] for path in run_paths]
    paths = [path for _, run_paths in chosen for path in run_paths]
    model = Seq2Seq(config.model, src.vocab_size, tgt.vocab_size)
    checkpoint.load_state_into(model, average_tensors(states), paths[0])
    tokenizers = (src, tgt)
    info = {"averaged": [str(p) for p in paths]}
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.save_config(out, config)
    checkpoint.save_tokenizers(out, *tokenizers)
    checkpoint.save_weights(out / checkpoint.LAST, model, tokenizers, info)
    checkpoint.save_weights(out / checkpoint.BEST, model, tokenizers, info)
    return paths
