"""Named starting configurations for `seqcli train`, and the one chosen when no config is given.

A preset is a partial config (a dict of sections) that a config file, flags and --set
override. Without --config, `seqcli train` picks one from the device and the corpus size:

- "cpu-small": the Multi30k CPU recipes' model and training without their data and time
  budget: a 1-layer BiLSTM encoder and LSTM decoder of 256 with three-way tied embeddings,
  general attention without input feeding (teacher forcing then runs the decoder over the
  whole target at once), variational, embedding and source word dropout, bf16 where the CPU
  has bf16 units, a warm-up and cosine decay of the learning rate over the budget (or
  max_steps), and the end-of-training averaging and length-penalty tuning: what trained
  best in tens of minutes on two cores (docs/results.md).
- "gpu-base": seqcli's defaults, a 2-layer BiLSTM encoder and LSTM decoder of 512 with input
  feeding (16.9M parameters on an 8,000-piece vocabulary): sized for a GPU or hours of CPU.

Neither sets the vocabulary: its level, size and sharing come from the data (seqcli.levels),
and the small preset shares the source and target embeddings only over one joint vocabulary.

Sizes then follow the corpus (`fit_to_corpus`): a small corpus gets smaller batches, so that
an epoch still has MIN_UPDATES_PER_EPOCH updates, an evaluation every few epochs rather than
every few dozen, and a warm-up no longer than the first evaluation interval. The width stays
the preset's: on 4,000 short pairs a width of 128 did not beat 256 on valid (experiments/presets.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from seqcli.config import TrainConfig
from seqcli.textio import open_input

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu-small": {
        "model": {
            "cell": "lstm",
            "embedding_size": 256,
            "hidden_size": 256,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "bidirectional": True,
            "attention": "general",
            "input_feeding": False,
            "dropout": 0.2,
            "embedding_dropout": 0.1,
            "variational_dropout": True,
            "tied_embeddings": True,
            "shared_embeddings": True,
        },
        "train": {
            "learning_rate": 0.003,
            "batch_tokens": 3000,
            "eval_every": 400,
            "patience": 8,
            "label_smoothing": 0.1,
            "word_dropout": 0.1,
            "bf16": True,
            "keep_checkpoints": 5,
            "average_last": 5,
            "lr_schedule": "cosine",
            "warmup_steps": 200,
            "tune_length_penalty": "0,0.4,0.8,1.2,1.6,2.0",
        },
    },
    "gpu-base": {},
}
PRESET_NAMES = ("auto", *PRESETS)


def choose_preset(device_type: str, pairs: int) -> str:
    """The preset for a device ("cpu", "cuda") and a corpus: a GPU affords the base model on
    any corpus of some size; a CPU, or a corpus too small for the base model's 13-17M
    parameters, gets the small one."""
    return "gpu-base" if device_type == "cuda" and pairs >= 10_000 else "cpu-small"


def preset_config(name: str, joint: bool = True) -> dict[str, dict[str, Any]]:
    """The preset's sections; with one vocabulary per side (joint False) the source and target
    embeddings stay apart."""
    values = {section: dict(options) for section, options in PRESETS[name].items()}
    if not joint and "model" in values:
        values["model"]["shared_embeddings"] = False
    return values


SAMPLE_PAIRS = 200_000  # pairs read to measure a corpus; larger corpora are extrapolated
# Pieces per whitespace token, about, by tokenizer level (a symbol or a word is one piece).
PIECES_PER_TOKEN = {"word": 1.0, "unigram": 1.3, "bpe": 1.3, "char": 5.0}
MIN_UPDATES_PER_EPOCH = 20
MIN_BATCH_TOKENS = 500
EPOCHS_PER_EVALUATION = 8  # at most; corpora of some size evaluate every eval_every updates as before
MIN_EVAL_EVERY = 50


@dataclass(frozen=True)
class Corpus:
    """What sizes are chosen from: the training pairs, and the whitespace tokens of each pair's
    longer side, summed (a batch costs its longer side)."""

    pairs: int
    tokens: int


def measure_corpus(paths: tuple[Path, Path], pairs: int) -> Corpus:
    """Count the first SAMPLE_PAIRS pairs' tokens; more pairs are extrapolated from them."""
    tokens = read = 0
    with open_input(paths[0]) as src, open_input(paths[1]) as tgt:
        # Sides of different lengths: training names the line; here the shorter one counts.
        for source, target in islice(zip(src, tgt, strict=False), SAMPLE_PAIRS):
            tokens += max(len(source.split()), len(target.split()))
            read += 1
    return Corpus(pairs, round(tokens * pairs / max(read, 1)))


def _default(name: str) -> Any:
    return TrainConfig.__dataclass_fields__[name].default


def fit_to_corpus(
    values: dict[str, dict[str, Any]], corpus: Corpus, level: str, given: dict[str, dict[str, Any]]
) -> str:
    """Set the preset's batch size, evaluation cadence and warm-up for this corpus and tokenizer
    level (in place), leaving what the user gives; return the line that says what they are and why."""
    train, mine_train = values.setdefault("train", {}), given.get("train", {})
    pieces = corpus.tokens * PIECES_PER_TOKEN.get(level, PIECES_PER_TOKEN["unigram"])
    batch = mine_train.get("batch_tokens") or max(
        MIN_BATCH_TOKENS,
        min(
            train.get("batch_tokens", _default("batch_tokens")),
            100 * round(pieces / MIN_UPDATES_PER_EPOCH / 100),
        ),
    )
    per_epoch = max(1, math.ceil(pieces / batch))
    eval_every = mine_train.get("eval_every") or max(
        MIN_EVAL_EVERY,
        min(train.get("eval_every", _default("eval_every")), EPOCHS_PER_EVALUATION * per_epoch),
    )
    train.update(batch_tokens=batch, eval_every=eval_every)
    if train.get("warmup_steps", 0) > eval_every:
        train["warmup_steps"] = eval_every
    return (
        f"sizes from the corpus ({corpus.tokens:,} tokens on the longer side, about {per_epoch:,} updates"
        f" an epoch): batches of {batch:,} tokens, an evaluation every {eval_every:,} updates; "
        "change them with --batch-tokens, --eval-every"
    )
