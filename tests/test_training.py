"""The training loop's handling of numerical faults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_ARGS  # noqa: F401  (same tiny sizes as the CLI tests)

from seqcli.config import config_from_dict
from seqcli.task import BatchLoss, BestRule
from seqcli.tasks import new_trainer
from seqcli.train import Trainer, TrainingDiverged


class SilentReporter:
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: object) -> None: ...
    def on_end(self, summary: object) -> None: ...
    def on_note(self, text: str) -> None: ...


def tiny_config(toy_dir: Path, **train: object) -> object:
    return config_from_dict(
        {
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 100, "joint": True},
            "model": {"embedding_size": 16, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1},
            "train": {"batch_tokens": 800, "eval_every": 1000, **train},
        }
    )


@pytest.fixture(scope="module")
def sentence_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.txt and valid.txt for skip-thought: documents of short sentences."""
    out = tmp_path_factory.mktemp("sentences")
    names = ["ann", "bob", "cat", "dan", "eve", "fay"]
    for split, n_docs in (("train", 30), ("valid", 2)):
        documents = [
            "\n".join(f"the {names[(d + i) % 6]} sees the {names[(d * i) % 6]} ." for i in range(8))
            for d in range(n_docs)
        ]
        (out / f"{split}.txt").write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return out


def task_trainer(task: str, toy_dir: Path, sentence_files: Path, run_dir: Path, max_steps: int) -> Trainer:
    if task == "translation":
        return new_trainer(tiny_config(toy_dir, max_steps=max_steps), run_dir, "cpu")  # type: ignore[arg-type]
    config = config_from_dict(
        {
            "data": {
                "task": "skip-thought",
                "train": str(sentence_files / "train.txt"),
                "valid": str(sentence_files / "valid.txt"),
            },
            "tokenizer": {"vocab_size": 40},
            "model": {"embedding_size": 16, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1},
            "train": {"batch_tokens": 300, "eval_every": 1000, "max_steps": max_steps},
        }
    )
    return new_trainer(config, run_dir, "cpu")


def poison_batches(monkeypatch: pytest.MonkeyPatch, trainer: Trainer, bad_calls: set[int]) -> None:
    """Make the task's batch loss NaN on the given (1-based) training batches, whatever the task."""
    real = trainer.task.batch_loss
    calls = {"n": 0}

    def maybe_nan(model: torch.nn.Module, items: list, step: int) -> BatchLoss:
        loss = real(model, items, step)
        calls["n"] += 1
        if calls["n"] not in bad_calls:
            return loss
        return BatchLoss(loss.loss_sum * float("nan"), loss.n_tokens, loss.objective * float("nan"))

    monkeypatch.setattr(trainer.task, "batch_loss", maybe_nan)


@pytest.mark.parametrize("task", ["translation", "skip-thought"])
def test_every_task_skips_nan_updates_and_stops_after_ten_in_a_row(
    task: str, toy_dir: Path, sentence_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = task_trainer(task, toy_dir, sentence_files, tmp_path / "a", max_steps=6)
    poison_batches(monkeypatch, trainer, {3, 4})
    unchanged = {}
    original_update = trainer.train_update

    def recording_update(micro_batches: list, step: int) -> tuple[float, int]:
        before = [p.detach().clone() for p in trainer.model.parameters()]
        result = original_update(micro_batches, step)
        unchanged[step] = all(
            torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)
        )
        return result

    monkeypatch.setattr(trainer, "train_update", recording_update)
    summary = trainer.run(SilentReporter())
    assert summary.skipped_steps == 2 and summary.steps == 6
    assert [unchanged[s] for s in range(6)] == [False, False, True, True, False, False]

    trainer = task_trainer(task, toy_dir, sentence_files, tmp_path / "b", max_steps=50)
    poison_batches(monkeypatch, trainer, set(range(3, 100)))
    with pytest.raises(TrainingDiverged, match=r"step 12: loss or gradient not finite for 10 steps in a row"):
        trainer.run(SilentReporter())


def test_best_rule_keeps_what_improves() -> None:
    bleu, loss = BestRule("valid_bleu", higher_is_better=True), BestRule("valid_loss", higher_is_better=False)
    assert bleu.improves(37.3, 37.2) and not bleu.improves(37.2, 37.2)
    assert loss.improves(1.6, 1.7) and not loss.improves(1.8, 1.7)
