"""`seqcli train`: build the configuration from TOML and flags, train, draw progress on stderr."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import typer

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
    from seqcli.cli.training import run_training

    run_training(config, out, resume, device)
