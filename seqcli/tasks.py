"""The tasks seqcli trains, by name (`data.task`), and the trainer built around one.

The training loop (`seqcli.train`) knows no task; this is where a configuration becomes a task
and a trainer for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seqcli import checkpoint
from seqcli.config import Config
from seqcli.skipthought import SkipThoughtTask
from seqcli.task import TaskSetting, TrainingTask
from seqcli.tokenizer import Tokenizer
from seqcli.train import Trainer, check_resumable
from seqcli.translation_task import TranslationTask

TASKS: dict[str, Callable[[Config, TaskSetting, tuple[Tokenizer, Tokenizer] | None], TrainingTask]] = {
    "translation": TranslationTask,
    "skip-thought": SkipThoughtTask,
}


def build_task(
    config: Config, run_dir: Path, device: str = "auto", tokenizers: tuple[Tokenizer, Tokenizer] | None = None
) -> TrainingTask:
    """The task of config.data.task for a run in run_dir, its random generators seeded from
    train.seed first (so that the same seed builds the same initial weights); `tokenizers` skip
    training new ones."""
    setting = TaskSetting.seeded(run_dir, config.train.seed, device, config.train.bf16)
    return TASKS[config.data.task](config, setting, tokenizers)


def new_trainer(
    config: Config, run_dir: Path, device: str = "auto", tokenizers: tuple[Tokenizer, Tokenizer] | None = None
) -> Trainer:
    """A trainer for a new run in run_dir (the configuration as the task resolved it)."""
    task = build_task(config, run_dir, device, tokenizers)
    return Trainer(task.config, run_dir, task)


def resume_trainer(run_dir: Path, config: Config, device: str = "auto") -> Trainer:
    """A trainer for an existing run, restored from its saved state; only limits (steps,
    epochs, minutes, patience) may differ from the stored configuration."""
    check_resumable(run_dir, config)
    task = build_task(config, run_dir, device, checkpoint.load_tokenizers(run_dir))
    trainer = Trainer(task.config, run_dir, task)
    trainer.restore_training_state()
    checkpoint.rewind(run_dir, trainer.loop.step)
    checkpoint.save_config(run_dir, trainer.config)
    return trainer
