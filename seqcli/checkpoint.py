"""Run directories: resolved config, tokenizer models and safetensors weights, checked on load.

Layout of RUN_DIR:
    config.toml            the resolved configuration
    src.spm, tgt.spm       SentencePiece models (the same bytes twice for a joint model)
    best.safetensors       weights with the best validation measure (translation: BLEU,
                           skip-thought: loss)
    last.safetensors       weights after the most recent evaluation
    train_state.safetensors  weights, optimizer and random-number states, the loop's position
                           and the objective's own state (hard attention's REINFORCE baseline),
                           for `seqcli train --resume` (one file, so always consistent)
    log.jsonl              one JSON record per evaluation

Weights are stored with safetensors and metadata as plain strings, so loading a run
directory never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
BEST, LAST, TRAIN_STATE = "best.safetensors", "last.safetensors", "train_state.safetensors"
STATE_FORMAT = "seqcli-train-state-1"


def save_config(run_dir: Path, config: Config) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, dumps_toml(config_to_dict(config)))


def save_tokenizers(run_dir: Path, src: Tokenizer, tgt: Tokenizer) -> None:
    src.save(run_dir / SRC_SPM)
    tgt.save(run_dir / TGT_SPM)


def check_complete(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: run directory not found")
    for name in (CONFIG_FILE, SRC_SPM, TGT_SPM):
        if not (run_dir / name).is_file():
            raise RunDirError(f"{run_dir}: incomplete run directory, {name} is missing")


def load_config(run_dir: Path) -> Config:
    check_complete(run_dir)
    try:
        return config_from_dict(load_toml(run_dir / CONFIG_FILE))
    except ConfigError as error:
        raise RunDirError(f"{run_dir / CONFIG_FILE}: {error}") from None


def load_tokenizers(run_dir: Path) -> tuple[Tokenizer, Tokenizer]:
    check_complete(run_dir)
    return Tokenizer.load(run_dir / SRC_SPM), Tokenizer.load(run_dir / TGT_SPM)


def unique_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
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
    tensors = unique_tensors(model)
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
        handle.write(save_safetensors(tensors, metadata=metadata))


def append_log(run_dir: Path, record: dict[str, Any]) -> None:
    """Add one record; the whole (small) log is rewritten atomically, so it is never torn."""
    path = run_dir / LOG_FILE
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text_atomic(path, old + json.dumps(record) + "\n")


def rewind(run_dir: Path, step: int) -> None:
    """Forget what a killed run wrote after the state it resumes from: log records of later
    evaluations (the resumed run makes them again) and temporary files of interrupted writes."""
    records = read_log(run_dir)
    kept = [record for record in records if record["step"] <= step]
    if len(kept) < len(records):
        write_text_atomic(run_dir / LOG_FILE, "".join(json.dumps(record) + "\n" for record in kept))
    for leftover in Path(run_dir).glob(".*.tmp"):  # atomic_open's names: .NAME.RANDOM.tmp
        leftover.unlink(missing_ok=True)


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class TrainingState:
    """What `--resume` needs beyond the weights: optimizer tensors, RNG states, loop counters."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # as torch's Optimizer.state_dict() returns it
    rng: dict[str, torch.Tensor]  # named generator states (uint8 tensors)
    loop: dict[str, Any]  # JSON-able counters of the training loop
    task: dict[str, Any] = field(default_factory=dict)  # JSON-able state of the task's objective
    # Where the state was computed (device type, torch threads): exactness holds on the same kind.
    machine: dict[str, Any] = field(default_factory=dict)


def _optimizer_to_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and a JSON-able rest."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_tensors(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for name, value in rest["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save_training_state(path: Path, state: TrainingState) -> None:
    """One safetensors file with everything to resume; refuses non-finite weights."""
    optimizer_tensors, optimizer_rest = _optimizer_to_tensors(state.optimizer)
    tensors = {f"model.{k}": v for k, v in state.model.items()}
    if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
        raise RunDirError(f"{path}: refusing to save non-finite weights")
    tensors |= optimizer_tensors | {f"rng.{k}": v for k, v in state.rng.items()}
    metadata = {
        "format": STATE_FORMAT,
        "seqcli_version": seqcli.__version__,
        "optimizer": json.dumps(optimizer_rest),
        "loop": json.dumps(state.loop),
        "task": json.dumps(state.task),
        "machine": json.dumps(state.machine),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save_safetensors(tensors, metadata=metadata))


def load_training_state(run_dir: Path) -> TrainingState:
    path = Path(run_dir) / TRAIN_STATE
    tensors, metadata = _read_safetensors(path, STATE_FORMAT)
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optimizer": {}, "rng": {}}
    for name, tensor in tensors.items():
        group, _, rest = name.partition(".")
        if group not in groups:
            raise RunDirError(f"{path}: unexpected tensor {name}")
        groups[group][rest if group != "optimizer" else name] = tensor
    try:
        optimizer = _optimizer_from_tensors(groups["optimizer"], json.loads(metadata["optimizer"]))
        loop = json.loads(metadata["loop"])
        task = json.loads(metadata.get("task", "{}"))
        machine = json.loads(metadata.get("machine", "{}"))
    except (KeyError, ValueError) as error:
        raise RunDirError(f"{path}: damaged training state ({error})") from None
    return TrainingState(groups["model"], optimizer, groups["rng"], loop, task, machine)


def saved_machine(run_dir: Path) -> dict[str, Any]:
    """Where a run's training state was computed (device type, torch threads), read from the
    file's header alone; {} when there is no state or it says nothing."""
    try:
        with open(Path(run_dir) / TRAIN_STATE, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size)) if 0 < size < 100_000_000 else {}
        return json.loads(header.get("__metadata__", {}).get("machine", "{}"))
    except (OSError, ValueError, AttributeError):
        return {}


@dataclass
class LoadedRun:
    """Everything translation needs from a run directory."""

    config: Config
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    tensors: dict[str, torch.Tensor]
    info: dict[str, Any]


def _read_safetensors(path: Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file written by seqcli; never unpickles."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found (has training written a checkpoint yet?)") from None
    try:
        tensors = load_safetensors(data)
        with_metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError):
        raise RunDirError(f"{path}: not a seqcli safetensors file (damaged, or another format)") from None
    metadata = with_metadata.get("__metadata__", {})
    if metadata.get("format") != expected_format:
        raise RunDirError(
            f"{path}: format {metadata.get('format')!r}; seqcli {seqcli.__version__} "
            f"reads {expected_format!r}"
        )
    return tensors, metadata


def load_weights(
    path: Path, src: Tokenizer, tgt: Tokenizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and info of one weights file of a run directory, checked to have been
    trained with these tokenizers (the run's src.spm and tgt.spm, already loaded)."""
    tensors, metadata = _read_safetensors(path, FORMAT)
    for side, tokenizer in (("src", src), ("tgt", tgt)):
        if metadata.get(f"{side}_spm_sha256") != tokenizer.sha256:
            raise RunDirError(
                f"{path.parent / f'{side}.spm'}: does not match the tokenizer the weights were trained with"
            )
    return tensors, json.loads(metadata.get("info", "{}"))


def load_run(run_dir: Path, weights: str = BEST) -> LoadedRun:
    """Read and cross-check a run directory: config, tokenizers and the weights' hashes."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    src, tgt = load_tokenizers(run_dir)
    tensors, info = load_weights(run_dir / weights, src, tgt)
    return LoadedRun(config, src, tgt, tensors, info)


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy weights into a model built from the same config; aliases (tied weights) may be absent."""
    expected = unique_tensors(model)
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
                f"{source}: weights do not fit the configured model ({name} has shape "
                f"{tuple(tensor.shape)}, the config gives {tuple(expected[name].shape)})"
            )
    model.load_state_dict(tensors, strict=False)
