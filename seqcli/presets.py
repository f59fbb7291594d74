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
"""

from __future__ import annotations

from typing import Any

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
