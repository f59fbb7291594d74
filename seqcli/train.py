"""The training loop shared by every task: updates, validation, checkpoints, early stopping, resume.

A task (`seqcli.task.TrainingTask`: translation, skip-thought) supplies the model, the batches,
one batch's loss and the validation measures; the loop here does the rest once for all. It
reports through a `TrainingReporter`, so the library never prints; the CLI draws the progress bar.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from seqcli import checkpoint, distributed
from seqcli.average import average_tensors, prune_step_checkpoints, step_checkpoint_name, step_checkpoints
from seqcli.budget import TimeBudget
from seqcli.config import Config, parse_alphas
from seqcli.corpus import EncodedCorpus
from seqcli.curves import CURVES_FILE, draw_curves
from seqcli.device import has_native_bf16, pick_device
from seqcli.errors import SeqcliError, UsageError
from seqcli.lr_decay import plateau_learning_rate, scheduled_learning_rate
from seqcli.optim import make_optimizer
from seqcli.skipthought import SkipThoughtTask
from seqcli.task import TaskSetting, TrainingTask
from seqcli.textio import atomic_open
from seqcli.tokenizer import Tokenizer
from seqcli.translate import Translator
from seqcli.translation_task import TranslationTask
from seqcli.tune import PenaltyResult, best_alpha, tune_length_penalty

# A plain table from config.data.task to the task that trains it.
TASKS: dict[str, Callable[[Config, TaskSetting, tuple[Tokenizer, Tokenizer] | None], TrainingTask]] = {
    "translation": TranslationTask,
    "skip-thought": SkipThoughtTask,
}


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
    """Holds the task, optimizer and loop state of one run, and runs the training loop.

    The task comes from config.data.task; `tokenizers` (src, tgt) skip training new ones.
    """

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        device: str = "auto",
        tokenizers: tuple[Tokenizer, Tokenizer] | None = None,
    ):
        self.config, self.run_dir = config, Path(run_dir)
        self.loop = LoopState()
        self.resume_notes: list[str] = []  # set by a resume: where exactness may not hold
        self.device = pick_device(device)
        self.world = distributed.current_world()
        torch.manual_seed(config.train.seed)
        random.seed(config.train.seed)
        self.sampler = torch.Generator().manual_seed(config.train.seed)
        self.use_bf16 = config.train.bf16 and has_native_bf16(self.device)
        setting = TaskSetting(self.device, self.world, self.sampler, self.use_bf16)
        self.task = TASKS[config.data.task](config, setting, tokenizers)
        self.model = self.task.model
        self.optimizer = make_optimizer(self.model, config.train.learning_rate)
        self.train_model = distributed.data_parallel(self.model, self.world, self.device)
        self.budget = TimeBudget(config.train.max_minutes * 60, self._finish_in_validations())

    def _finish_in_validations(self) -> float:
        """The end-of-training steps' expected duration, in validations: one for checkpoint
        averaging, and for the length-penalty search BEAM_PASS_IN_VALIDATIONS per alpha."""
        cfg = self.config.train
        alphas = parse_alphas(cfg.tune_length_penalty, "train.tune_length_penalty")
        tuning = len(alphas) if isinstance(self.task, TranslationTask) else 0
        return (1.0 if cfg.average_last else 0.0) + BEAM_PASS_IN_VALIDATIONS * tuning

    # Translation's parts, as benchmarks, experiments and tests reach them.
    @property
    def translation(self) -> TranslationTask:
        if not isinstance(self.task, TranslationTask):
            raise UsageError(f"a {self.config.data.task} run has no translation parts")
        return self.task

    @property
    def train_data(self) -> EncodedCorpus:
        return self.translation.train_data

    @property
    def translator(self) -> Translator:
        return self.translation.translator

    @property
    def src_tokenizer(self) -> Tokenizer:
        return self.task.tokenizers[0]

    @property
    def tgt_tokenizer(self) -> Tokenizer:
        return self.task.tokenizers[1]

    def validation_loss(self) -> float:
        return self.task.validation_loss()

    def train_step(self, examples: Sequence[Any], step: int) -> tuple[float, int]:
        """One update on one batch; returns the summed loss and the number of target tokens."""
        return self.train_update([examples], step)

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

    def _save(self, name: str, info: dict[str, object]) -> None:
        checkpoint.save_weights(self.run_dir / name, self.model, self.task.tokenizers, info)

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
            "from_step": self.loop.step,
        }
        self.reporter.on_start(cfg.max_steps, info)
        loop = self.loop
        loop.started_at = loop.interval_start = time.monotonic()  # setup is not training time
        self.model.train()
        with _InterruptFlag() as interrupt:
            self.interrupt = interrupt
            stop_reason = ""
            while not stop_reason and loop.epoch <= cfg.max_epochs:
                stop_reason = self._run_epoch(loop)
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
        if self.world.is_main and stop_reason != "interrupted":
            self._finish(loop)
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
        self.reporter.on_end(summary)
        return summary

    def _run_epoch(self, loop: LoopState) -> str:
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
            if self.world.broadcast(self.interrupt.is_set):  # rank 0's signal stops every rank
                return "interrupted"
        return self._stop_reason(loop)

    def _stop_reason(self, loop: LoopState) -> str:
        """'max_steps' or 'max_minutes' when training must stop before another update, else ''.
        The time budget keeps room for the validation after the last update and for the
        end-of-training steps, judged from the durations seen so far."""
        if loop.step >= self.config.train.max_steps:
            return "max_steps"
        if not self.world.broadcast(self.budget.allows_step(loop.elapsed())):
            left = self.budget.left(loop.elapsed())
            self.reporter.on_note(
                f"--max-minutes: stopping at step {loop.step} with {left:.0f} s left for the last "
                "validation and the end-of-training steps"
            )
            return "max_minutes"
        return ""

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
        self.reporter.on_step(loop.step, loss_sum / n_tokens, loop.tokens / max(elapsed, 1e-9), gold)

    def _evaluate(self, loop: LoopState) -> None:
        if not self.world.is_main:
            self._follow_evaluation(loop)
            return
        train_seconds = time.monotonic() - loop.interval_start
        validation_started = time.monotonic()
        measures = self.task.validate()
        self.budget.validation_seconds = time.monotonic() - validation_started
        rule = self.task.best
        value = measures[rule.measure]
        is_best = loop.best_step == 0 or rule.improves(value, loop.best_value)
        evaluation = Evaluation(
            step=loop.step,
            epoch=loop.epoch,
            train_loss=round(loop.loss_sum / max(loop.tokens, 1), 4),
            measures=measures,
            gold_probability=round(self.task.gold_probability(loop.step), 4),
            target_tokens_per_second=round(loop.tokens / max(train_seconds, 1e-9), 1),
            elapsed_seconds=round(loop.elapsed(), 1),
            is_best=is_best,
            skipped_steps=loop.skipped_steps,
            learning_rate=self.optimizer.param_groups[0]["lr"],
        )
        info: dict[str, object] = {"step": loop.step, "epoch": loop.epoch, rule.measure: value}
        if is_best:
            loop.best_value, loop.best_step, loop.evals_without_gain = value, loop.step, 0
        else:
            loop.evals_without_gain += 1
        self._decay_learning_rate(loop.evals_without_gain)
        loop.last_eval_step = loop.step
        loop.loss_sum, loop.tokens, loop.interval_start = 0.0, 0, time.monotonic()
        # Weights first, the resumable state last: a crash in between leaves an older state
        # that resumes and simply redoes the steps since it.
        self._save(checkpoint.LAST, info)
        if is_best:
            self._save(checkpoint.BEST, info)
        if self.config.train.keep_checkpoints:
            self._save(step_checkpoint_name(loop.step), info)
            prune_step_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        checkpoint.append_log(self.run_dir, evaluation.record())
        self.save_training_state()
        # Derived from the log, so drawn last: a kill while plotting loses nothing to resume.
        draw_curves(checkpoint.read_log(self.run_dir), self.run_dir / CURVES_FILE)
        self.reporter.on_evaluation(evaluation)
        self.world.broadcast((loop.best_step, loop.best_value, loop.evals_without_gain))

    def _finish(self, loop: LoopState) -> None:
        """The end-of-training steps the config asks for: checkpoint averaging, then the
        length penalty tuned on valid for the weights that end as best.safetensors. What they
        found goes to RUN_DIR/finish.json."""
        cfg = self.config.train
        found: dict[str, object] = {}
        if cfg.average_last and len(step_checkpoints(self.run_dir)) >= 2:
            found["averaging"] = self._average_last(loop)
        if cfg.tune_length_penalty and isinstance(self.task, TranslationTask):
            found["length_penalty"] = self._tune_length_penalty()
        if found:
            self._load(checkpoint.LAST)  # the weights as training left them
            self.save_training_state()  # a resume compares with the kept mean's score
            with atomic_open(self.run_dir / FINISH_FILE, "w") as handle:
                json.dump(found, handle, indent=2)

    def _load(self, name: str) -> None:
        tensors, _ = checkpoint.load_weights(self.run_dir / name, *self.task.tokenizers)
        checkpoint.load_state_into(self.model, tensors, self.run_dir / name)

    def _average_last(self, loop: LoopState) -> dict[str, object]:
        """Validate the mean of the last train.average_last step checkpoints; keep it as
        best.safetensors when it beats the best single checkpoint."""
        paths = step_checkpoints(self.run_dir)[-self.config.train.average_last :]
        self.reporter.on_note(f"averaging the last {len(paths)} checkpoints and validating the mean")
        states = [checkpoint.load_weights(path, *self.task.tokenizers)[0] for path in paths]
        checkpoint.load_state_into(self.model, average_tensors(states), paths[0])
        measures = self.task.validate()
        rule = self.task.best
        value = measures[rule.measure]
        kept = rule.improves(value, loop.best_value)
        if kept:
            info = {"step": loop.step, "averaged": [p.name for p in paths], rule.measure: value}
            self._save(checkpoint.BEST, info)
            loop.best_value, loop.best_step = value, loop.step  # the best weights: the end's mean
        verdict = "kept as best" if kept else f"not kept (best single: {loop.best_value:.2f})"
        self.reporter.on_note(f"mean of {len(paths)} checkpoints: {rule.measure} {value:.2f}, {verdict}")
        return {"checkpoints": [p.name for p in paths], **measures, "kept": kept}

    def _tune_length_penalty(self) -> dict[str, object]:
        """Beam search on valid with each alpha of train.tune_length_penalty, with the best
        weights; the best alpha becomes decode.length_penalty in RUN_DIR/config.toml."""
        alphas = parse_alphas(self.config.train.tune_length_penalty, "train.tune_length_penalty")
        self._load(checkpoint.BEST)
        task = self.translation
        results: list[PenaltyResult] = []
        alpha_seconds = 0.0  # the last alpha's search: the next one is judged to take as long
        for alpha in alphas:
            left = self.budget.left(self.loop.elapsed())
            if results and alpha_seconds > left:
                self.reporter.on_note(
                    f"--max-minutes: {len(results)} of {len(alphas)} length penalties tried "
                    f"({left:.0f} s left, one takes {alpha_seconds:.0f} s)"
                )
                break
            self.reporter.on_note(f"length penalty {alpha:g}: beam {self.config.decode.beam_size} on valid")
            started = time.monotonic()
            results += tune_length_penalty(task.translator, task.valid_src, task.valid_tgt, [alpha])
            alpha_seconds = time.monotonic() - started
        self.model.train()
        best = best_alpha(results)
        self.config = replace(self.config, decode=replace(self.config.decode, length_penalty=best.alpha))
        task.translator.decode = self.config.decode
        checkpoint.save_config(self.run_dir, self.config)
        self.reporter.on_note(f"length penalty {best.alpha:g} (valid BLEU {best.scores.bleu:.2f}) stored")
        return {
            "beam_size": self.config.decode.beam_size,
            "valid_bleu": {f"{r.alpha:g}": r.scores.bleu for r in results},
            "chosen": best.alpha,
        }

    def _schedule_learning_rate(self, loop: LoopState) -> None:
        """Set the rate of the next update from train.lr_schedule and the warm-up (the plateau
        decay, which the config keeps apart from a schedule, changes it at evaluations only).
        Cosine's progress is the larger share used of max_steps and of max_minutes."""
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

    @classmethod
    def resume(cls, run_dir: Path, config: Config, device: str = "auto") -> Trainer:
        """A trainer for an existing run; only limits (steps, epochs, minutes, patience) may change."""
        stored = checkpoint.load_config(run_dir)
        for section in ("data", "tokenizer", "model"):
            if getattr(config, section) != getattr(stored, section):
                raise UsageError(f"--resume {run_dir}: the {section} settings differ from the stored run")
        tokenizers = checkpoint.load_tokenizers(run_dir)
        trainer = cls(config, run_dir, device, tokenizers=tokenizers)
        trainer.restore_training_state()
        checkpoint.save_config(run_dir, config)
        return trainer


MAX_CONSECUTIVE_NONFINITE = 10
# A beam search over the validation sources (one alpha of the length-penalty search), in
# validations (the validation loss and a greedy search): measured on Multi30k.
BEAM_PASS_IN_VALIDATIONS = 2.0
FINISH_FILE = "finish.json"  # what the end-of-training averaging and tuning found


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
