"""The Multi30k de->en models that experiments 2-6 read: one grid of configurations x seeds.

Every model is the CPU recipe as these experiments were measured with (RECIPE below: a 1-layer
BiLSTM/LSTM of 256 with embeddings of 128, Luong general attention, no input feeding; the
recipe in configs/ has since gained tied embeddings and more dropout) with one thing changed,
trained for the same number of updates on one torch thread, sharing one SentencePiece model so
BLEU is comparable.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from experiments.claims.common import in_workers, log, train_model

RECIPE = """\
[data]
src_lang = "de"
tgt_lang = "en"

[tokenizer]
type = "unigram"
vocab_size = 4000
joint = true

[model]
cell = "lstm"
embedding_size = 128
hidden_size = 256
encoder_layers = 1
decoder_layers = 1
bidirectional = true
attention = "general"
input_feeding = false
dropout = 0.2

[train]
learning_rate = 0.003
batch_tokens = 3000
label_smoothing = 0.1
"""
GOLD_FLOOR = 0.75  # scheduled sampling: the gold-token probability at the end of the decay
# The scheduled-sampling runs: each mode with each schedule.
SAMPLED = tuple(
    (mode, schedule)
    for mode in ("sequential", "parallel")
    for schedule in ("linear", "exponential", "inverse_sigmoid")
)
TINY_MODEL = {"embedding_size": 16, "hidden_size": 32}  # smoke runs: the recipe's shape, tiny sizes


def inverse_sigmoid_k(steps: int, floor: float) -> float:
    """k with k / (k + exp(steps / k)) = floor, so the schedule reaches the floor at `steps`."""
    low, high = 1.0, 10.0 * steps
    for _ in range(100):  # the probability at `steps` rises with k: bisect
        k = (low + high) / 2
        low, high = (k, high) if k / (k + math.exp(min(steps / k, 700))) < floor else (low, k)
    return (low + high) / 2


def schedules(steps: int) -> dict[str, dict[str, Any]]:
    """Gold-token probability falling from 1 to GOLD_FLOOR over the first 80% of training."""
    decay = int(0.8 * steps)
    return {
        "linear": {"teacher_forcing": "linear", "tf_min": GOLD_FLOOR, "tf_slope": (1 - GOLD_FLOOR) / decay},
        "exponential": {
            "teacher_forcing": "exponential",
            "tf_min": GOLD_FLOOR,
            "tf_k": GOLD_FLOOR ** (1 / decay),
        },
        "inverse_sigmoid": {
            "teacher_forcing": "inverse_sigmoid",
            "tf_k": inverse_sigmoid_k(decay, GOLD_FLOOR),
        },
    }


def variants(steps: int) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Name -> (model changes, train changes) on top of the recipe."""
    runs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "general": ({}, {}),
        "additive": ({"attention": "additive"}, {}),
        "none": ({"attention": "none"}, {}),
        "hard": ({"attention": "hard"}, {"hard_attention_estimator": "exact"}),
        "hard-reinforce": ({"attention": "hard"}, {"hard_attention_estimator": "reinforce"}),
        "unidirectional": ({"bidirectional": False}, {}),
    }
    for mode, name in SAMPLED:
        runs[f"ss-{mode}-{name}"] = ({}, {**schedules(steps)[name], "scheduled_sampling": mode})
    return runs


def run_config(name: str, seed: int, steps: int, data: Path, tiny: bool = False) -> dict[str, Any]:
    recipe = tomllib.loads(RECIPE)
    model, train = variants(steps)[name]
    recipe["data"].update(train=str(data / "train"), valid=str(data / "valid"))
    recipe["model"].update(model, **(TINY_MODEL if tiny else {}))
    recipe["train"].update(
        max_steps=steps,
        max_minutes=0.0,
        eval_every=max(steps // 4, 1),
        patience=100,
        seed=seed,
        bf16=True,  # used only where the CPU has bf16 units
        **train,
    )
    return recipe


def tokenizer_model(work: Path, data: Path) -> Path:
    """One joint SentencePiece model for every run (the recipe's: unigram, 4,000 pieces)."""
    path = work / "spm.model"
    if not path.exists():
        from seqcli.textio import read_lines
        from seqcli.tokenizer import TokenizerSpec, train_sentencepiece

        lines = read_lines(data / "train.de") + read_lines(data / "train.en")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(train_sentencepiece(lines, TokenizerSpec("unigram", 4000)))
    return path


def run_dir(work: Path, name: str, seed: int) -> Path:
    return work / "multi30k" / f"{name}-seed{seed}"


def train_one(name: str, seed: int, steps: int, work: Path, data: Path, tiny: bool = False) -> dict[str, Any]:
    spm = tokenizer_model(work, data)
    return train_model(run_config(name, seed, steps, data, tiny), run_dir(work, name, seed), str(spm))


def train_grid(
    names: list[str], seeds: list[int], steps: int, work: Path, data: Path, workers: int, tiny: bool = False
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train (or reuse) every name x seed; returns each run's record."""
    tokenizer_model(work, data)
    jobs = [(name, seed, steps, work, data, tiny) for seed in seeds for name in names]
    log(f"multi30k: {len(jobs)} runs of {steps} updates, {workers} at a time")
    records = in_workers(train_one, jobs, workers)
    return {(name, seed): record for (name, seed, *_), record in zip(jobs, records, strict=True)}
