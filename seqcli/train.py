"""The training loop, the same for every task: updates, validation, checkpoints, stopping, exact resume.

A task (`seqcli.task.TrainingTask`) supplies the model, the batches, one batch's loss and the
validation measures; the loop here does the rest once for all, and knows no task. It reports
through a `TrainingReporter`, so the library never prints; the CLI draws the progress bar.
What a run does after the loop (checkpoint averaging, the task's own last steps) is
`seqcli.finish`.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from seqcli import checkpoint, distributed
from seqcli.average import prune_step_checkpoints, step_checkpoint_name
from seqcli.budget import TimeBudget
from seqcli.config import Config
from seqcli.errors import SeqcliError, UsageError
from seqcli.lr_decay import plateau_learning_rate, scheduled_learning_rate
from seqcli.optim import make_optimizer
from seqcli.task import TrainingTask

MAX_CONSECUTIVE_NONFINITE = 10


@dataclass(frozen=True)
class Evaluation:
    """One validation record, also written to RUN_DIR/log.jsonl (see `record`)."""

    step: int
    epoch: int
    train_loss: float  # per target token, averaged since the previous evaluation
    measures: dict[str, float]  # the task's validation measures: valid_loss, valid_bleu, ...
    gold_probability: float
    target_tokens_per_second: float
    elapsed_seconds: float
    is_best: bool
    skipped_steps: int  # updates skipped for a non-finite loss, since the start
    learning_rate: float  # the rate of the updates since the previous evaluation

    def record(self) -> dict[str, Any]:
        """The log line: the task's measures in place of the `measures` field."""
        values = asdict(self)
        fields = list(values)
        at = fields.index("measures")
        order = fields[:at] + list(self.measures) + fields[at + 1 :]
        return {name: values[name] if name in values else self.measures[name] for name in order}


@dataclass(frozen=True)
class TrainingSummary:
    steps: int
    best_step: int
    best_measure: str  # the task's measure that chose best.safetensors, e.g. valid_bleu
    best_value: float
    stop_reason: str
    parameters: int
    elapsed_seconds: float
    skipped_steps: int


class TrainingReporter(Protocol):
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: Evaluation) -> None: ...
    def on_end(self, summary: TrainingSummary) -> None: ...
    def on_note(self, text: str) -> None: ...


class Trainer:
    """Holds one run's task, optimizer and loop state, and runs the training loop.

    `seqcli.tasks` builds the task from the config and the trainer around it.
    """

    def __init__(self, config: Config, run_dir: Path, task: TrainingTask):
        self.config, self.run_dir, self.task = config, Path(run_dir), task
        self.device, self.world, self.sampler = task.setting.device, task.setting.world, task.setting.sampler
        self.model = task.model
        self.optimizer = make_optimizer(self.model, config.train.learning_rate)
        self.train_model = distributed.data_parallel(self.model, self.world, self.device)
        self.loop = LoopState()
        self.resume_notes: list[str] = []  # set by a resume: where exactness may not hold
        # Checkpoint averaging validates once more at the end; the task's own last steps take
        # what it says (seqcli.finish).
        finish = (1.0 if config.train.average_last else 0.0) + task.after_training_in_validations()
        self.budget = TimeBudget(config.train.max_minutes * 60, finish)
        self.reporter: TrainingReporter | None = None

    def train_update(self, micro_batches: Sequence[Sequence[Any]], step: int) -> tuple[float, int]:
        """One update on this process's micro-batches (see `distributed.shard_updates`).

        The gradient is that of the summed loss of the micro-batches of all processes divided
        by their total target tokens: one process training on their union would take the same
        step. Returns that summed loss and token count, over all processes.

        A non-finite loss or gradient norm skips the update (the loss is returned as is, so
        the caller can count it) and leaves the weights untouched.
        """
        self.optimizer.zero_grad(set_to_none=True)
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, target tokens
        for index, items in enumerate(micro_batches):
            with distributed.gradient_sync(self.train_model, index == len(micro_batches) - 1):
                totals += self._backward(items, step)
        loss_value, n_tokens = self.world.sum(totals).tolist()
        # DDP averaged the gradients over the processes; this makes them the per-token mean.
        distributed.scale_gradients(self.model, self.world.size / n_tokens)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip_norm)
        if not (math.isfinite(loss_value) and torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return math.nan, int(n_tokens)
        self.optimizer.step()
        return loss_value, int(n_tokens)

    def _backward(self, items: Sequence[Any], step: int) -> torch.Tensor:
        """Add the gradient of one batch's summed objective; returns (loss sum, target tokens)."""
        loss = self.task.batch_loss(self.train_model, items, step)
        loss.objective.backward()
        loss_sum = loss.loss_sum.detach().double()
        return torch.stack([loss_sum, loss_sum.new_tensor(float(loss.n_tokens))])

    def save_weights(self, name: str, info: dict[str, object]) -> None:
        checkpoint.save_weights(self.run_dir / name, self.model, self.task.tokenizers, info)

    def load_weights(self, name: str) -> None:
        tensors, _ = checkpoint.load_weights(self.run_dir / name, *self.task.tokenizers)
        checkpoint.load_state_into(self.model, tensors, self.run_dir / name)

    def run(self, reporter: TrainingReporter) -> TrainingSummary:
        """Train until max steps, max epochs, the time limit or early stopping.

        SIGINT saves the training state and raises TrainingInterrupted; `resume` goes on from it.
        """
        self.reporter = reporter
        cfg = self.config.train
        if self.loop.step == 0 and self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.save_config(self.run_dir, self.config)
            checkpoint.save_tokenizers(self.run_dir, *self.task.tokenizers)
        info = {
            **self.task.info(),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "kernels": cfg.kernels,
        }
        reporter.on_start(cfg.max_steps, {**info, "from_step": self.loop.step})
        loop = self.loop
        loop.started_at = loop.interval_start = time.monotonic()  # setup is not training time
        self.model.train()
        with _InterruptFlag() as interrupt:
            stop_reason = ""
            while not stop_reason and loop.epoch <= cfg.max_epochs:
                stop_reason = self._run_epoch(loop, interrupt)
                if not stop_reason:
                    loop.epoch, loop.batch_in_epoch = loop.epoch + 1, 0
            if stop_reason == "interrupted":
                self.save_training_state()
                raise TrainingInterrupted(
                    f"interrupted at step {loop.step}; state saved, continue with "
                    f"`seqcli train --resume {self.run_dir}`"
                )
        if loop.step > loop.last_eval_step:
            self._evaluate(loop)
        summary = TrainingSummary(
            steps=loop.step,
            best_step=loop.best_step,
            best_measure=self.task.best.measure,
            best_value=loop.best_value,
            stop_reason=stop_reason or "max_epochs",
            parameters=sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            elapsed_seconds=round(loop.elapsed(), 1),
            skipped_steps=loop.skipped_steps,
        )
        reporter.on_end(summary)
        return summary

    def _run_epoch(self, loop: LoopState, interrupt: _InterruptFlag) -> str:
        """Train on the rest of the current epoch; returns why training must stop, or ''."""
        cfg = self.config.train
        batches = self.task.epoch_batches(loop.epoch)
        items = self.task.train_items  # after the batches: subword sampling re-encodes them
        updates = distributed.shard_updates(batches, self.world, cfg.accum_steps)
        per_update = self.world.size * cfg.accum_steps  # batches of the epoch one update covers
        for micro_batches in updates[loop.batch_in_epoch // per_update :]:
            if stop_reason := self._stop_reason(loop):
                return stop_reason
            self._schedule_learning_rate(loop)
            started = time.monotonic()
            loss_sum, n_tokens = self.train_update(
                [[items[i] for i in indices] for indices in micro_batches], loop.step
            )
            self.budget.count_step(time.monotonic() - started)
            loop.batch_in_epoch += per_update
            loop.step += 1
            self._count_loss(loop, loss_sum, n_tokens)
            if loop.step % cfg.eval_every == 0:
                self._evaluate(loop)
                if loop.evals_without_gain >= cfg.patience:
                    return "early_stopping"
            if self.world.broadcast(interrupt.is_set):  # rank 0's signal stops every rank
                return "interrupted"
        return self._stop_reason(loop)

    def _stop_reason(self, loop: LoopState) -> str:
        """'max_steps' or 'max_minutes' when training must stop before another update, else ''.
        The time budget keeps room for the validation after the last update and for the
        end-of-training steps, judged from the durations seen so far."""
        if loop.step >= self.config.train.max_steps:
            return "max_steps"
        if not self.world.broadcast(self.budget.allows_step(loop.elapsed())):
            self._note(
                f"--max-minutes: stopping at step {loop.step} with {self.budget.left(loop.elapsed()):.0f} s "
                "left for the last validation and the end-of-training steps"
            )
            return "max_minutes"
        return ""

    def _note(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.on_note(text)

    def _count_loss(self, loop: LoopState, loss_sum: float, n_tokens: int) -> None:
        """Add a step's loss to the running figures; stop when updates keep failing."""
        if not math.isfinite(loss_sum):
            loop.skipped_steps += 1
            loop.consecutive_skips += 1
            if loop.consecutive_skips >= MAX_CONSECUTIVE_NONFINITE:
                raise TrainingDiverged(
                    f"step {loop.step}: loss or gradient not finite for {loop.consecutive_skips} "
                    f"steps in a row ({loop.skipped_steps} skipped in all); stopping. The last "
                    f"good weights are in {self.run_dir / checkpoint.LAST}"
                )
            return
        loop.consecutive_skips = 0
        loop.loss_sum += loss_sum
        loop.tokens += n_tokens
        elapsed = time.monotonic() - loop.interval_start
        gold = self.task.gold_probability(loop.step)
        assert self.reporter is not None
        self.reporter.on_step(loop.step, loss_sum / n_tokens, loop.tokens / max(elapsed, 1e-9), gold)

    def _evaluate(self, loop: LoopState) -> None:
        """Validate, judge the result, and write what a resume or a translation needs."""
        if not self.world.is_main:
            self._follow_evaluation(loop)
            return
        evaluation = self._validate(loop)
        self._take_verdict(loop, evaluation)
        self._save_evaluation(loop, evaluation)
        assert self.reporter is not None
        self.reporter.on_evaluation(evaluation)
        self.world.broadcast((loop.best_step, loop.best_value, loop.evals_without_gain))

    def _validate(self, loop: LoopState) -> Evaluation:
        """The task's validation measures and the training figures since the last evaluation."""
        train_seconds = time.monotonic() - loop.interval_start
        started = time.monotonic()
        measures = self.task.validate()
        self.budget.validation_seconds = time.monotonic() - started
        rule = self.task.best
        value = measures[rule.measure]
        return Evaluation(
            step=loop.step,
            epoch=loop.epoch,
            train_loss=round(loop.loss_sum / max(loop.tokens, 1), 4),
            measures=measures,
            gold_probability=round(self.task.gold_probability(loop.step), 4),
            target_tokens_per_second=round(loop.tokens / max(train_seconds, 1e-9), 1),
            elapsed_seconds=round(loop.elapsed(), 1),
            is_best=loop.best_step == 0 or rule.improves(value, loop.best_value),
            skipped_steps=loop.skipped_steps,
            learning_rate=self.optimizer.param_groups[0]["lr"],
        )

    def _take_verdict(self, loop: LoopState, evaluation: Evaluation) -> None:
        """Best so far or not: the patience count, the plateau decay, the loop's counters."""
        if evaluation.is_best:
            loop.best_value = evaluation.measures[self.task.best.measure]
            loop.best_step, loop.evals_without_gain = loop.step, 0
        else:
            loop.evals_without_gain += 1
        self._decay_learning_rate(loop.evals_without_gain)
        loop.last_eval_step = loop.step
        loop.loss_sum, loop.tokens, loop.interval_start = 0.0, 0, time.monotonic()

    def _save_evaluation(self, loop: LoopState, evaluation: Evaluation) -> None:
        """Weights first, the log and the resumable state last: a crash in between leaves an
        older state that resumes and simply redoes the steps since it."""
        measure = self.task.best.measure
        info: dict[str, object] = {
            "step": loop.step,
            "epoch": loop.epoch,
            measure: evaluation.measures[measure],
        }
        self.save_weights(checkpoint.LAST, info)
        if evaluation.is_best:
            self.save_weights(checkpoint.BEST, info)
        if self.config.train.keep_checkpoints:
            self.save_weights(step_checkpoint_name(loop.step), info)
            prune_step_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        checkpoint.append_log(self.run_dir, evaluation.record())
        self.save_training_state()

    def _schedule_learning_rate(self, loop: LoopState) -> None:
        """Set the rate of the next update from train.lr_schedule and the warm-up (the plateau
        decay, which the config keeps apart from a schedule, changes it at evaluations only).
        Cosine's progress is the larger share used of max_steps and of the time budget."""
        cfg = self.config.train
        if cfg.lr_schedule == "constant" and not cfg.warmup_steps:
            return
        progress = loop.step / cfg.max_steps
        if self.budget.is_limited:
            progress = max(progress, loop.elapsed() / self.budget.training_seconds())
        rate = scheduled_learning_rate(
            cfg.learning_rate, loop.step, cfg.lr_schedule, cfg.warmup_steps, progress, cfg.min_learning_rate
        )
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def _decay_learning_rate(self, evals_without_gain: int) -> None:
        """On a plateau of the task's best measure, lower the rate (it is saved with the optimizer)."""
        cfg = self.config.train
        for group in self.optimizer.param_groups:
            group["lr"] = plateau_learning_rate(
                group["lr"], evals_without_gain, cfg.lr_decay_factor, cfg.lr_patience, cfg.min_learning_rate
            )

    def _follow_evaluation(self, loop: LoopState) -> None:
        """Ranks other than 0: wait while rank 0 validates and writes, then take its verdict."""
        loop.best_step, loop.best_value, loop.evals_without_gain = self.world.broadcast((0, 0.0, 0))
        self._decay_learning_rate(loop.evals_without_gain)
        loop.last_eval_step = loop.step
        loop.loss_sum, loop.tokens, loop.interval_start = 0.0, 0, time.monotonic()

    def save_training_state(self) -> None:
        if not self.world.is_main:  # the ranks hold the same weights; rank 0 writes for all
            return
        rng = {"torch": torch.get_rng_state(), "sampler": self.sampler.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = checkpoint.TrainingState(
            model=checkpoint.unique_tensors(self.model),
            optimizer=self.optimizer.state_dict(),
            rng=rng,
            loop=self.loop.to_dict(),
            task=self.task.state(),
            machine=self._machine(),
        )
        checkpoint.save_training_state(self.run_dir / checkpoint.TRAIN_STATE, state)

    def restore_training_state(self) -> None:
        """Continue exactly where the saved state left off: weights, optimizer, RNGs, loop, task."""
        state = checkpoint.load_training_state(self.run_dir)
        checkpoint.load_state_into(self.model, state.model, self.run_dir / checkpoint.TRAIN_STATE)
        self.optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng["torch"])
        self.sampler.set_state(state.rng["sampler"])
        if "cuda" in state.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["cuda"], self.device)
        self.loop = LoopState.from_dict(state.loop)
        self.task.load_state(state.task)
        self.resume_notes = _machine_differences(state.machine, self._machine())

    def _machine(self) -> dict[str, object]:
        """What the bit-exactness of a resume depends on besides the saved state."""
        return {"device": self.device.type, "threads": torch.get_num_threads()}


def check_resumable(run_dir: Path, config: Config) -> None:
    """A run can continue with new limits (steps, epochs, minutes, patience), not a new model."""
    stored = checkpoint.load_config(run_dir)
    tok = config.tokenizer  # what it left to the data (type auto, vocab_size 0), as the run decided
    if tok.type == "auto":
        tok = replace(tok, type=stored.tokenizer.type, joint=stored.tokenizer.joint)
    config = replace(config, tokenizer=replace(tok, vocab_size=tok.vocab_size or stored.tokenizer.vocab_size))
    for section in ("data", "tokenizer", "model"):
        if getattr(config, section) != getattr(stored, section):
            raise UsageError(f"--resume {run_dir}: the {section} settings differ from the stored run")


def _machine_differences(saved: dict[str, object], now: dict[str, object]) -> list[str]:
    """Why a resumed run may not end bit for bit as an uninterrupted one would: the saved state
    was computed on another device type (other kernels, other random generators) or with
    another number of torch threads (kernels may split their sums differently)."""
    labels = {"device": "device", "threads": "torch threads"}
    return [
        f"this run was saved with {labels[key]} {saved[key]} and continues with {now[key]}, so its "
        "weights may differ slightly from an uninterrupted run's"
        for key in labels
        if key in saved and saved[key] != now[key]
    ]


class TrainingInterrupted(SeqcliError):
    """SIGINT during training; the state was saved."""

    exit_code = 130


class TrainingDiverged(SeqcliError):
    """The loss stayed non-finite."""


class _InterruptFlag:
    """Turn SIGINT into a flag the loop checks between steps, so a step is never cut in half."""

    def __init__(self) -> None:
        self.is_set = False
        self._previous: object = None

    def __enter__(self) -> _InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.is_set = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]


@dataclass
class LoopState:
    """Counters of the training loop; saved with the training state so a resume is exact."""

    step: int = 0
    epoch: int = 1
    batch_in_epoch: int = 0  # batches of this epoch already trained on
    loss_sum: float = 0.0
    tokens: int = 0
    last_eval_step: int = 0
    best_step: int = 0  # 0: no evaluation yet
    best_value: float = 0.0  # of the task's best measure, at best_step
    evals_without_gain: int = 0
    skipped_steps: int = 0
    consecutive_skips: int = 0
    finished_step: int = 0  # the step at which the end-of-training steps last ran (seqcli.finish)
    elapsed_before: float = 0.0  # seconds trained before this process started or resumed the run
    started_at: float = field(default_factory=time.monotonic)
    interval_start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started_at

    def to_dict(self) -> dict[str, float | int]:
        values = asdict(self)
        values["elapsed_before"] = self.elapsed()
        del values["started_at"], values["interval_start"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, float | int]) -> LoopState:
        values = dict(values)
        if "best_bleu" in values:  # states saved before the loop served several tasks
            values["best_value"] = values.pop("best_bleu")
        return cls(**values)  # type: ignore[arg-type]
