"""`seqcli train`: build the configuration from TOML and flags, train, draw progress on stderr."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seqcli.errors import UsageError

Option = typer.Option


def parse_set(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """--set section.name=value (value in TOML-like syntax: 3, 0.5, true, "text" or text)."""
    result: dict[str, dict[str, Any]] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UsageError(f"--set {item}: expected section.name=value, e.g. model.cell=gru")
        raw = raw.strip()
        lowered = {"true": "True", "false": "False"}.get(raw, raw)
        try:
            value = ast.literal_eval(lowered)
        except (ValueError, SyntaxError):
            value = raw
        result.setdefault(section, {})[name] = value
    return result


def train_command(
    config_file: Path = Option(
        None, "--config", help="TOML file with [data] [tokenizer] [model] [train] [decode]."
    ),
    train: str = Option(None, "--train", help="Training corpus prefix (PREFIX.SRC_LANG, PREFIX.TGT_LANG)."),
    valid: str = Option(None, "--valid", help="Validation corpus prefix."),
    src_lang: str = Option(None, "--src-lang", help="Source file suffix, e.g. de."),
    tgt_lang: str = Option(None, "--tgt-lang", help="Target file suffix, e.g. en."),
    task: str = Option(
        None, help="translation (parallel corpus) or skip-thought (--train/--valid: sentence files)."
    ),
    out: Path = Option(None, "--out", help="Run directory to create."),
    resume: Path = Option(None, "--resume", help="Continue the run in this directory from its saved state."),
    vocab_size: int = Option(None, help="SentencePiece vocabulary size."),
    tokenizer_type: str = Option(None, help="unigram, bpe or char."),
    joint: bool = Option(None, "--joint/--separate", help="One SentencePiece model for both sides, or two."),
    src_spm: str = Option(None, "--src-spm", help="Existing SentencePiece model for the source (or both)."),
    tgt_spm: str = Option(None, "--tgt-spm", help="Existing SentencePiece model for the target."),
    cell: str = Option(None, help="lstm, gru or rnn."),
    attention: str = Option(None, help="general, dot, additive, hard or none."),
    embedding_size: int = Option(None, help="Embedding size."),
    hidden_size: int = Option(None, help="Decoder hidden size (encoder: half per direction)."),
    encoder_layers: int = Option(None, help="Encoder layers."),
    decoder_layers: int = Option(None, help="Decoder layers."),
    bidirectional: bool = Option(None, "--bidirectional/--unidirectional", help="Encoder direction."),
    input_feeding: bool = Option(
        None, "--input-feeding/--no-input-feeding", help="Feed attentional vectors."
    ),
    bridge: str = Option(None, help="Decoder start: bridge, last or zeros."),
    dropout: float = Option(None, help="Dropout between layers and before the output."),
    learning_rate: float = Option(None, "--lr", help="Adam learning rate."),
    batch_tokens: int = Option(None, help="Tokens per batch (padded with buckets, real with random)."),
    batching: str = Option(None, help="buckets (similar lengths together) or random (mixed lengths)."),
    accum_steps: int = Option(
        None, help="Batches per update and process; the update covers accum-steps x processes batches."
    ),
    max_steps: int = Option(None, help="Stop after this many updates."),
    max_epochs: int = Option(None, help="Stop after this many passes over the data."),
    max_minutes: float = Option(None, help="Stop after this many minutes (0 = no limit)."),
    eval_every: int = Option(None, help="Validate every N updates."),
    patience: int = Option(None, help="Stop after N validations without a better BLEU."),
    label_smoothing: float = Option(None, help="Label smoothing (0 = off)."),
    teacher_forcing: str = Option(None, help="constant, linear, exponential or inverse_sigmoid."),
    tf_start: float = Option(None, help="Gold-token probability at the start (constant: always)."),
    tf_min: float = Option(None, help="Floor of linear/exponential decay."),
    tf_slope: float = Option(None, help="Linear decay per update."),
    tf_k: float = Option(None, help="Exponential base (<1) or inverse-sigmoid k (>=1)."),
    scheduled_sampling: str = Option(
        None, help="sequential (exact, step by step) or parallel (two teacher-forced passes)."
    ),
    seed: int = Option(None, help="Random seed."),
    assignments: list[str] = Option([], "--set", help="Any option as section.name=value; repeatable."),
    device: str = Option("auto", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """Train an attentional encoder-decoder; RUN_DIR then holds all that translate needs."""
    from seqcli.config import config_from_dict, config_to_dict, load_toml, merge

    flags = {
        "data": {"train": train, "valid": valid, "src_lang": src_lang, "tgt_lang": tgt_lang, "task": task},
        "tokenizer": {
            "vocab_size": vocab_size,
            "type": tokenizer_type,
            "joint": joint,
            "src_model": src_spm,
            "tgt_model": tgt_spm,
        },
        "model": {
            "cell": cell,
            "attention": attention,
            "embedding_size": embedding_size,
            "hidden_size": hidden_size,
            "encoder_layers": encoder_layers,
            "decoder_layers": decoder_layers,
            "bidirectional": bidirectional,
            "input_feeding": input_feeding,
            "bridge": bridge,
            "dropout": dropout,
        },
        "train": {
            "learning_rate": learning_rate,
            "batch_tokens": batch_tokens,
            "batching": batching,
            "accum_steps": accum_steps,
            "max_steps": max_steps,
            "max_epochs": max_epochs,
            "max_minutes": max_minutes,
            "eval_every": eval_every,
            "patience": patience,
            "label_smoothing": label_smoothing,
            "teacher_forcing": teacher_forcing,
            "tf_start": tf_start,
            "tf_min": tf_min,
            "tf_slope": tf_slope,
            "tf_k": tf_k,
            "scheduled_sampling": scheduled_sampling,
            "seed": seed,
        },
    }
    if (out is None) == (resume is None):
        raise UsageError("--out or --resume: give exactly one (a new run directory, or one to continue)")
    if resume is not None:
        from seqcli.checkpoint import load_config

        base = config_to_dict(load_config(resume))
    else:
        base = load_toml(config_file) if config_file else {}
    config = config_from_dict(merge(merge(base, flags), parse_set(assignments)))
    if config.data.task == "skip-thought":
        from seqcli.cli.embed import train_skip_thought

        return train_skip_thought(config, out, device)

    from seqcli import distributed
    from seqcli.train import Trainer

    device = distributed.join_torchrun_job(device)  # under torchrun: one process of a data-parallel job
    if resume is not None:
        trainer = Trainer.resume(resume, config, device)
    else:
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"--out {out}: directory exists and is not empty; choose a new run directory")
        trainer = Trainer(config, out, device)
    with RichReporter() if distributed.current_world().is_main else QuietReporter() as reporter:
        trainer.run(reporter)
    del trainer  # DistributedDataParallel must go before the process group it uses
    distributed.leave_torchrun_job()


class QuietReporter:
    """Ranks other than 0 under torchrun: rank 0 alone reports."""

    def __enter__(self) -> QuietReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def on_start(self, max_steps: int, info: dict[str, object]) -> None:
        pass

    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None:
        pass

    def on_evaluation(self, evaluation: Any) -> None:
        pass

    def on_end(self, summary: Any) -> None:
        pass


class RichReporter:
    """Progress bar with loss, tokens/second and ETA on stderr; one line per evaluation."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TextColumn("{task.fields[speed]:,.0f} tok/s"),
            TextColumn("gold p {task.fields[gold]:.2f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("train", total=1, loss=0.0, speed=0.0, gold=1.0)
        # A log file gets no live bar, so it gets a progress line now and then instead.
        self.line_every = 0.0 if self.console.is_terminal else 30.0
        self.last_line = time.monotonic()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, max_steps: int, info: dict[str, object]) -> None:
        self.progress.update(self.task, total=max_steps)
        details = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in info.items())
        self.console.print(f"seqcli train: {details}")

    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None:
        self.progress.update(
            self.task, completed=step, loss=loss, speed=tokens_per_second, gold=gold_probability
        )

    def on_evaluation(self, evaluation: Any) -> None:
        best = " (best)" if evaluation.is_best else ""
        self.console.print(
            f"step {evaluation.step}: train loss {evaluation.train_loss:.3f}, valid loss "
            f"{evaluation.valid_loss:.3f}, valid BLEU {evaluation.valid_bleu:.2f}, chrF "
            f"{evaluation.valid_chrf:.2f}, exact {evaluation.valid_exact_match:.1f}%{best}"
        )

    def on_end(self, summary: Any) -> None:
        self.console.print(
            f"done after {summary.steps} steps ({summary.stop_reason}, {summary.elapsed_seconds:.0f} s): "
            f"best valid BLEU {summary.best_bleu:.2f} at step {summary.best_step}"
        )
