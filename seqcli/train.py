"""The training loop: batches, scheduled teacher forcing, validation, checkpoints, early stopping.

The loop reports through a `TrainingReporter`, so the library never prints; the CLI draws
the progress bar.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

from seqcli import checkpoint
from seqcli.config import Config
from seqcli.corpus import EncodedCorpus, Example, bucket_batches, collate, encode_parallel, read_parallel
from seqcli.errors import DataError
from seqcli.loss import HardAttentionObjective, sequence_loss
from seqcli.metrics import score
from seqcli.model.seq2seq import Seq2Seq
from seqcli.teacher import TeacherForcingSchedule, draw_gold_mask
from seqcli.tokenizer import Tokenizer, TokenizerSpec, check_model_choice, train_sentencepiece
from seqcli.translate import Translator


@dataclass(frozen=True)
class Evaluation:
    """One validation record, also written to RUN_DIR/log.jsonl."""

    step: int
    epoch: int
    train_loss: float  # per target token, averaged since the previous evaluation
    valid_loss: float
    valid_bleu: float
    valid_chrf: float
    valid_exact_match: float
    gold_probability: float
    target_tokens_per_second: float
    elapsed_seconds: float
    is_best: bool


@dataclass(frozen=True)
class TrainingSummary:
    steps: int
    best_step: int
    best_bleu: float
    stop_reason: str
    parameters: int
    filtered_pairs: int
    elapsed_seconds: float


class TrainingReporter(Protocol):
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: Evaluation) -> None: ...
    def on_end(self, summary: TrainingSummary) -> None: ...


def prepare_tokenizers(
    config: Config, src_lines: list[str], tgt_lines: list[str]
) -> tuple[Tokenizer, Tokenizer]:
    """Load the given SentencePiece models, or train them on the training corpus."""
    tok = config.tokenizer
    check_model_choice(tok.joint, tok.src_model, tok.tgt_model)
    spec = TokenizerSpec(tok.type, tok.vocab_size, tok.character_coverage)
    if tok.joint:
        given = tok.src_model or tok.tgt_model
        joint = (
            Tokenizer.load(Path(given))
            if given
            else Tokenizer(train_sentencepiece(src_lines + tgt_lines, spec))
        )
        return joint, joint
    src = (
        Tokenizer.load(Path(tok.src_model))
        if tok.src_model
        else Tokenizer(train_sentencepiece(src_lines, spec))
    )
    tgt = (
        Tokenizer.load(Path(tok.tgt_model))
        if tok.tgt_model
        else Tokenizer(train_sentencepiece(tgt_lines, spec))
    )
    return src, tgt


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Holds the model, optimizer and data of one run, and runs the training loop."""

    def __init__(self, config: Config, run_dir: Path, device: str = "auto"):
        self.config, self.run_dir = config, Path(run_dir)
        self.device = pick_device(device)
        torch.manual_seed(config.train.seed)
        random.seed(config.train.seed)
        self.sampler = torch.Generator().manual_seed(config.train.seed)
        self.schedule = TeacherForcingSchedule(
            config.train.teacher_forcing,
            config.train.tf_start,
            config.train.tf_min,
            config.train.tf_slope,
            config.train.tf_k,
        )
        self._load_data()
        self.model = Seq2Seq(config.model, self.src_tokenizer.vocab_size, self.tgt_tokenizer.vocab_size).to(
            self.device
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.train.learning_rate)
        self.attention_objective = HardAttentionObjective(config.train.hard_attention_entropy)
        self.translator = Translator(
            self.model, self.src_tokenizer, self.tgt_tokenizer, config.decode, self.device
        )

    def _load_data(self) -> None:
        data = self.config.data
        if not data.train or not data.valid:
            raise DataError("--train and --valid: both corpus prefixes are needed")
        src_lines, tgt_lines = read_parallel(data.train, data.src_lang, data.tgt_lang)
        self.valid_src, self.valid_tgt = read_parallel(data.valid, data.src_lang, data.tgt_lang)
        self.src_tokenizer, self.tgt_tokenizer = prepare_tokenizers(self.config, src_lines, tgt_lines)
        self.train_data: EncodedCorpus = encode_parallel(
            src_lines, tgt_lines, self.src_tokenizer, self.tgt_tokenizer, data.max_tokens_per_sentence
        )
        if not self.train_data.examples:
            raise DataError(f"{data.train}: no usable training pairs after length filtering")
        # Validation loss uses every pair; only truly empty ones are skipped.
        self.valid_data = encode_parallel(
            self.valid_src, self.valid_tgt, self.src_tokenizer, self.tgt_tokenizer, 10**9
        )

    def train_step(self, examples: list[Example], step: int) -> tuple[float, int]:
        """One update on one batch; returns the summed loss and the number of target tokens."""
        batch = collate(examples).to(self.device)
        gold_probability = self.schedule.gold_probability(step)
        use_gold = draw_gold_mask(tuple(batch.tgt_in.shape), gold_probability, self.sampler)
        if use_gold is not None:
            use_gold = use_gold.to(self.device)
        output = self.model(batch.src, batch.src_lengths, batch.tgt_in, use_gold)
        loss_sum = sequence_loss(output.logits, batch.tgt_out, self.config.train.label_smoothing)
        n_tokens = batch.n_tgt_tokens
        objective = loss_sum
        if output.choice is not None:  # hard attention: its scores learn from REINFORCE only
            objective = objective + self.attention_objective(output.choice, output.logits, batch.tgt_out)
        self.optimizer.zero_grad(set_to_none=True)
        (objective / n_tokens).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip_norm)
        self.optimizer.step()
        return loss_sum.item(), n_tokens

    @torch.inference_mode()
    def validation_loss(self) -> float:
        """Teacher-forced loss per target token on the validation set (no label smoothing)."""
        self.model.eval()
        total, tokens = 0.0, 0
        batches = bucket_batches(self.valid_data.examples, self.config.train.batch_tokens, seed=0)
        for indices in batches:
            batch = collate([self.valid_data.examples[i] for i in indices]).to(self.device)
            logits = self.model(batch.src, batch.src_lengths, batch.tgt_in).logits
            total += sequence_loss(logits, batch.tgt_out, 0.0).item()
            tokens += batch.n_tgt_tokens
        self.model.train()
        return total / max(tokens, 1)

    def validation_scores(self) -> tuple[float, float, float]:
        """BLEU, chrF and exact match of searched translations of the validation sources."""
        hypotheses = self.translator.translate_lines(
            self.valid_src, beam_size=self.config.train.eval_beam_size
        )
        self.model.train()
        scores = score(hypotheses, self.valid_tgt)
        return scores.bleu, scores.chrf, scores.exact_match

    def _save(self, name: str, info: dict[str, object]) -> None:
        checkpoint.save_weights(
            self.run_dir / name, self.model, (self.src_tokenizer, self.tgt_tokenizer), info
        )

    def run(self, reporter: TrainingReporter) -> TrainingSummary:
        """Train until max steps, max epochs, the time limit or early stopping."""
        self.reporter = reporter
        cfg = self.config.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.save_config(self.run_dir, self.config)
        checkpoint.save_tokenizers(self.run_dir, self.src_tokenizer, self.tgt_tokenizer)
        self.reporter.on_start(
            cfg.max_steps,
            {
                "parameters": self.model.count_parameters(),
                "train_pairs": len(self.train_data.examples),
                "filtered_pairs": self.train_data.n_filtered,
                "src_vocab": self.src_tokenizer.vocab_size,
                "tgt_vocab": self.tgt_tokenizer.vocab_size,
                "device": str(self.device),
            },
        )
        loop = _LoopState(start=time.monotonic())
        self.model.train()
        stop_reason = "max_epochs"
        for epoch in range(1, cfg.max_epochs + 1):
            loop.epoch = epoch
            stop_reason = self._run_epoch(loop)
            if stop_reason:
                break
        else:
            stop_reason = "max_epochs"
        if loop.step > loop.last_eval_step:
            self._evaluate(loop)
        summary = TrainingSummary(
            steps=loop.step,
            best_step=loop.best_step,
            best_bleu=loop.best_bleu,
            stop_reason=stop_reason,
            parameters=self.model.count_parameters(),
            filtered_pairs=self.train_data.n_filtered,
            elapsed_seconds=round(time.monotonic() - loop.start, 1),
        )
        self.reporter.on_end(summary)
        return summary

    def _run_epoch(self, loop: _LoopState) -> str:
        """Train one pass over the data; returns why training must stop, or '' to go on."""
        cfg = self.config.train
        examples = self.train_data.examples
        for indices in bucket_batches(examples, cfg.batch_tokens, seed=cfg.seed * 1000 + loop.epoch):
            loss_sum, n_tokens = self.train_step([examples[i] for i in indices], loop.step)
            if not math.isfinite(loss_sum):
                raise DataError(f"training diverged: non-finite loss at step {loop.step + 1}")
            loop.step += 1
            loop.loss_sum += loss_sum
            loop.tokens += n_tokens
            elapsed = time.monotonic() - loop.interval_start
            gold = self.schedule.gold_probability(loop.step)
            self.reporter.on_step(loop.step, loss_sum / n_tokens, loop.tokens / max(elapsed, 1e-9), gold)
            if loop.step % cfg.eval_every == 0:
                self._evaluate(loop)
                if loop.evals_without_gain >= cfg.patience:
                    return "early_stopping"
            if loop.step >= cfg.max_steps:
                return "max_steps"
            if cfg.max_minutes and time.monotonic() - loop.start >= cfg.max_minutes * 60:
                return "max_minutes"
        return ""

    def _evaluate(self, loop: _LoopState) -> None:
        train_seconds = time.monotonic() - loop.interval_start
        valid_loss = self.validation_loss()
        bleu, chrf, exact = self.validation_scores()
        is_best = bleu > loop.best_bleu or loop.best_step == 0
        evaluation = Evaluation(
            step=loop.step,
            epoch=loop.epoch,
            train_loss=round(loop.loss_sum / max(loop.tokens, 1), 4),
            valid_loss=round(valid_loss, 4),
            valid_bleu=bleu,
            valid_chrf=chrf,
            valid_exact_match=exact,
            gold_probability=round(self.schedule.gold_probability(loop.step), 4),
            target_tokens_per_second=round(loop.tokens / max(train_seconds, 1e-9), 1),
            elapsed_seconds=round(time.monotonic() - loop.start, 1),
            is_best=is_best,
        )
        info = {"step": loop.step, "epoch": loop.epoch, "valid_bleu": bleu}
        self._save(checkpoint.LAST, info)
        if is_best:
            self._save(checkpoint.BEST, info)
            loop.best_bleu, loop.best_step, loop.evals_without_gain = bleu, loop.step, 0
        else:
            loop.evals_without_gain += 1
        checkpoint.append_log(self.run_dir, asdict(evaluation))
        self.reporter.on_evaluation(evaluation)
        loop.last_eval_step = loop.step
        loop.loss_sum, loop.tokens, loop.interval_start = 0.0, 0, time.monotonic()


@dataclass
class _LoopState:
    """Counters of the running loop."""

    start: float
    step: int = 0
    epoch: int = 0
    loss_sum: float = 0.0
    tokens: int = 0
    interval_start: float = 0.0
    last_eval_step: int = 0
    best_step: int = 0
    best_bleu: float = -1.0
    evals_without_gain: int = 0

    def __post_init__(self) -> None:
        self.interval_start = self.start
