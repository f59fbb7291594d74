"""What the training loop asks of a task (translation, skip-thought): batches, a loss, validation.

The loop in `seqcli.train` owns everything the tasks share: the optimizer, the update rule
and its non-finite check, stop rules, evaluation cadence, checkpoints, exact resume and the
log. A task owns its model, its data, what its numbers mean, and its own end-of-training
steps (`after_training`, which `seqcli.finish` runs).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from seqcli.config import Config
from seqcli.device import has_native_bf16, pick_device
from seqcli.distributed import World, current_world
from seqcli.tokenizer import Tokenizer


@dataclass(frozen=True)
class TaskSetting:
    """Where and how a task trains, decided before it is built."""

    run_dir: Path  # where the task keeps its data (the training corpus's token store)
    device: torch.device
    world: World
    sampler: torch.Generator  # the task's own random draws; saved with the training state
    use_bf16: bool  # bfloat16 autocast of the training forward pass

    @classmethod
    def seeded(cls, run_dir: Path, seed: int, device: str, bf16: bool) -> TaskSetting:
        """Seed torch's and Python's generators (the model the task then builds starts from the
        same weights for the same seed), pick the device, and use bf16 where it runs in hardware."""
        torch.manual_seed(seed)
        random.seed(seed)
        picked = pick_device(device)
        sampler = torch.Generator().manual_seed(seed)
        return cls(Path(run_dir), picked, current_world(), sampler, bf16 and has_native_bf16(picked))


@dataclass(frozen=True)
class BatchLoss:
    """One batch's forward pass: what to report and what to differentiate."""

    loss_sum: Tensor  # scalar: the summed cross-entropy of the real target tokens
    n_tokens: int  # real target tokens of the batch
    objective: Tensor  # scalar to backpropagate: loss_sum plus any auxiliary term


@dataclass(frozen=True)
class BestRule:
    """Which validation measure picks best.safetensors and drives early stopping."""

    measure: str  # a key of the task's `validate` record
    higher_is_better: bool

    def improves(self, value: float, best: float) -> bool:
        return value > best if self.higher_is_better else value < best


class TrainingTask(Protocol):
    """One kind of training run, as the loop sees it."""

    setting: TaskSetting
    config: Config  # as the task resolved it (settings derived from the data filled in)
    warnings: list[str]  # what the user must know about the data, said once at the start

    @property
    def model(self) -> nn.Module:
        """The weights the loop optimizes and saves."""
        ...

    @property
    def tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        """Saved as src.spm and tgt.spm (one model twice where both sides share it)."""
        ...

    @property
    def train_items(self) -> Sequence[Any]:
        """The training examples that `epoch_batches` indexes."""
        ...

    @property
    def best(self) -> BestRule: ...

    def info(self) -> dict[str, object]:
        """Sizes for the start-of-run line: parameters, examples, vocabularies."""
        ...

    def epoch_batches(self, epoch: int) -> Sequence[Sequence[int]]:
        """The batches of one epoch, as sequences of indices into train_items."""
        ...

    def batch_loss(self, model: nn.Module, items: Sequence[Any], step: int) -> BatchLoss:
        """Forward one batch through `model` (the task's model, or its data-parallel wrapper)."""
        ...

    def gold_probability(self, step: int) -> float:
        """The chance of feeding a gold target token at this step (1 without scheduled sampling)."""
        ...

    def validation_loss(self) -> float:
        """Teacher-forced loss per target token on the validation set (no label smoothing)."""
        ...

    def validate(self) -> dict[str, float]:
        """The validation measures, named as they appear in log.jsonl (valid_loss, ...)."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-able state of the objective that an exact resume needs beyond the weights."""
        ...

    def load_state(self, state: dict[str, Any]) -> None: ...

    def after_training(
        self, run_dir: Path, seconds_left: Callable[[], float], note: Callable[[str], None]
    ) -> dict[str, object]:
        """The task's own last steps, with the best weights loaded (translation: the length
        penalty tuned on valid); what they found, for RUN_DIR/finish.json ({} for none).
        seconds_left: the time budget still open; note: a line for the user."""
        ...

    def after_training_in_validations(self) -> float:
        """How long `after_training` takes, in validations (for the time budget)."""
        ...
