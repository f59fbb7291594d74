"""Run directories: resolved config, tokenizer models and safetensors weights, checked on load.

Layout of RUN_DIR:
    config.toml            the resolved configuration
    src.spm, tgt.spm       SentencePiece models (the same bytes twice for a joint model)
    best.safetensors       weights with the best validation BLEU
    last.safetensors       weights after the most recent evaluation
    log.jsonl              one JSON record per evaluation

Weights are stored with safetensors and metadata as plain strings, so loading a run
directory never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

import seqcli
from seqcli.config import Config, config_from_dict, config_to_dict, dumps_toml, load_toml
from seqcli.errors import ConfigError, RunDirError
from seqcli.textio import atomic_open, write_text_atomic
from seqcli.tokenizer import Tokenizer

FORMAT = "seqcli-weights-1"
CONFIG_FILE, SRC_SPM, TGT_SPM, LOG_FILE = "config.toml", "src.spm", "tgt.spm", "log.jsonl"
BEST, LAST = "best.safetensors", "last.safetensors"


def save_config(run_dir: Path, config: Config) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, dumps_toml(config_to_dict(config)))


def save_tokenizers(run_dir: Path, src: Tokenizer, tgt: Tokenizer) -> None:
    src.save(run_dir / SRC_SPM)
    tgt.save(run_dir / TGT_SPM)


def _unique_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without aliases (tied weights are stored once)."""
    seen: set[int] = set()
    tensors = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        tensors[name] = tensor.detach().cpu().contiguous()
    return tensors


def save_weights(
    path: Path, model: nn.Module, tokenizers: tuple[Tokenizer, Tokenizer], info: dict[str, Any]
) -> None:
    """Write weights atomically with the tokenizer hashes and training info as metadata."""
    tensors = _unique_tensors(model)
    if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
        raise RunDirError(f"{path}: refusing to save non-finite weights")
    metadata = {
        "format": FORMAT,
        "seqcli_version": seqcli.__version__,
        "src_spm_sha256": tokenizers[0].sha256,
        "tgt_spm_sha256": tokenizers[1].sha256,
        "info": json.dumps(info),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save_safetensors(tensors, metadata=metadata))  # type: ignore[arg-type]


def append_log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


@dataclass
class LoadedRun:
    """Everything translation needs from a run directory."""

    config: Config
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    tensors: dict[str, torch.Tensor]
    info: dict[str, Any]


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path}: no weights (has training written a checkpoint yet?)") from None
    try:
        tensors = load_safetensors(data)
        with_metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (SafetensorError, ValueError, UnicodeDecodeError):
        raise RunDirError(f"{path}: not a safetensors weights file") from None
    metadata = with_metadata.get("__metadata__", {})
    if metadata.get("format") != FORMAT:
        raise RunDirError(f"{path}: format {metadata.get('format')!r}, this seqcli reads {FORMAT!r}")
    return tensors, metadata


def load_run(run_dir: Path, weights: str = BEST) -> LoadedRun:
    """Read and cross-check a run directory: config, tokenizers and the weights' hashes."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: run directory not found")
    for name in (CONFIG_FILE, SRC_SPM, TGT_SPM):
        if not (run_dir / name).is_file():
            raise RunDirError(f"{run_dir}: incomplete run directory, {name} is missing")
    try:
        config = config_from_dict(load_toml(run_dir / CONFIG_FILE))
    except ConfigError as error:
        raise RunDirError(f"{run_dir / CONFIG_FILE}: {error}") from None
    src, tgt = Tokenizer.load(run_dir / SRC_SPM), Tokenizer.load(run_dir / TGT_SPM)
    tensors, metadata = _read_weights(run_dir / weights)
    for side, tokenizer in (("src", src), ("tgt", tgt)):
        if metadata.get(f"{side}_spm_sha256") != tokenizer.sha256:
            raise RunDirError(
                f"{run_dir / f'{side}.spm'}: does not match the tokenizer the weights were trained with"
            )
    return LoadedRun(config, src, tgt, tensors, json.loads(metadata.get("info", "{}")))


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy weights into a model built from the same config; aliases (tied weights) may be absent."""
    expected = _unique_tensors(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(model.state_dict()))
    if missing or unexpected:
        raise RunDirError(
            f"{source}: weights do not fit the configured model"
            f" (missing: {missing[:3]}, unexpected: {unexpected[:3]})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected.get(name, tensor).shape:
            raise RunDirError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=False)
