"""The end of a training run: the mean of its last checkpoints, then the task's own last steps.

After the loop (`seqcli.train`) has stopped, a run may validate the mean of its last
train.average_last evaluation checkpoints and keep it as best.safetensors when it beats the
best single one, then hand the best weights to the task (translation tunes the length penalty
on valid). What they found goes to RUN_DIR/finish.json, written last: a run killed on the way
is finished again by `--resume`, from the same saved state, to the same result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqcli import checkpoint
from seqcli.average import average_tensors, step_checkpoints
from seqcli.textio import atomic_open
from seqcli.train import Trainer, TrainingReporter

FINISH_FILE = "finish.json"


def read_finish(run_dir: Path) -> dict[str, Any]:
    """What RUN_DIR/finish.json records (averaging, length penalty); {} before a run finished."""
    path = Path(run_dir) / FINISH_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def finish_run(trainer: Trainer, reporter: TrainingReporter) -> dict[str, Any] | None:
    """Average, then the task's last steps, once per trained step count (the training state
    records it); None when there was nothing to do, or another process of the job does it."""
    cfg, loop = trainer.config.train, trainer.loop
    if not trainer.world.is_main or loop.finished_step == loop.step:
        return None
    found: dict[str, Any] = {}
    if cfg.average_last and len(step_checkpoints(trainer.run_dir)) >= 2:
        found["averaging"] = average_last(trainer, reporter)
    trainer.load_weights(checkpoint.BEST)
    found |= trainer.task.after_training(
        trainer.run_dir, lambda: trainer.budget.left(loop.elapsed()), reporter.on_note
    )
    trainer.model.train()
    if not found:
        return None
    # The record first, the state that says it is done last: a kill in between finishes again.
    with atomic_open(trainer.run_dir / FINISH_FILE, "w") as handle:
        json.dump({"step": loop.step, **found}, handle, indent=2)
    trainer.load_weights(checkpoint.LAST)  # the weights as training left them
    loop.finished_step = loop.step
    trainer.save_training_state()  # a run trained further compares with the kept mean's score
    return found


def average_last(trainer: Trainer, reporter: TrainingReporter) -> dict[str, object]:
    """Validate the mean of the last train.average_last step checkpoints; keep it as
    best.safetensors when it beats the best single checkpoint."""
    loop, task = trainer.loop, trainer.task
    paths = step_checkpoints(trainer.run_dir)[-trainer.config.train.average_last :]
    reporter.on_note(f"averaging the last {len(paths)} checkpoints and validating the mean")
    states = [checkpoint.load_weights(path, *task.tokenizers)[0] for path in paths]
    checkpoint.load_state_into(trainer.model, average_tensors(states), paths[0])
    measures = task.validate()
    rule = task.best
    value = measures[rule.measure]
    kept = rule.improves(value, loop.best_value)
    if kept:
        trainer.save_weights(
            checkpoint.BEST, {"step": loop.step, "averaged": [p.name for p in paths], rule.measure: value}
        )
        loop.best_value, loop.best_step = value, loop.step  # the best weights: the end's mean
    verdict = "kept as best" if kept else f"not kept (best single: {loop.best_value:.2f})"
    reporter.on_note(f"mean of {len(paths)} checkpoints: {rule.measure} {value:.2f}, {verdict}")
    return {"checkpoints": [p.name for p in paths], **measures, "kept": kept}
