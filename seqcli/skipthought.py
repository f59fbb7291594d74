"""Skip-thought training on a sentence file, and sentence vectors from its run directory.

The training file has one sentence per line; a blank line ends a document, and only
sentences with a neighbour on both sides in the same document become training triples
(previous, current, next). The run directory has the translation layout (config.toml with
data.task = "skip-thought", src.spm = tgt.spm, best/last weights, log.jsonl).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from seqcli import checkpoint
from seqcli.config import Config
from seqcli.corpus import Example, bucket_batches, pad
from seqcli.errors import DataError, RunDirError
from seqcli.loss import sequence_loss
from seqcli.model.skipthought import SkipThought
from seqcli.optim import make_optimizer
from seqcli.sentences import read_documents
from seqcli.textio import read_nonempty_file
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.vocab import BOS_ID, EOS_ID, PAD_ID

TASK = "skip-thought"


@dataclass(frozen=True)
class Triple:
    """A sentence and its two neighbours, as piece ids without BOS/EOS."""

    previous: list[int]
    current: list[int]
    next: list[int]


def make_triples(documents: list[list[list[int]]], max_tokens: int) -> list[Triple]:
    """Every sentence with a neighbour on both sides; sentences are cut to max_tokens pieces."""
    triples = []
    for sentences in documents:
        cut = [s[:max_tokens] for s in sentences]
        for i in range(1, len(cut) - 1):
            if cut[i - 1] and cut[i] and cut[i + 1]:
                triples.append(Triple(cut[i - 1], cut[i], cut[i + 1]))
    return triples


@dataclass
class TripleBatch:
    """src (B, S), src_lengths (B,); *_in (B, T) start with BOS, *_out (B, T) end with EOS."""

    src: Tensor
    src_lengths: Tensor
    previous_in: Tensor
    previous_out: Tensor
    next_in: Tensor
    next_out: Tensor

    @property
    def n_tgt_tokens(self) -> int:
        return int((self.previous_out != PAD_ID).sum() + (self.next_out != PAD_ID).sum())


def collate_triples(triples: list[Triple], device: torch.device) -> TripleBatch:
    tensors = (
        pad([t.current for t in triples]),
        torch.tensor([len(t.current) for t in triples], dtype=torch.long),
        pad([[BOS_ID] + t.previous for t in triples]),
        pad([t.previous + [EOS_ID] for t in triples]),
        pad([[BOS_ID] + t.next for t in triples]),
        pad([t.next + [EOS_ID] for t in triples]),
    )
    return TripleBatch(*(t.to(device) for t in tensors))


def triple_batches(triples: list[Triple], batch_tokens: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches of about batch_tokens padded target tokens (corpus.bucket_batches)."""
    proxies = [Example(t.current, max(t.previous, t.next, key=len)) for t in triples]
    return bucket_batches(proxies, batch_tokens, seed)


def skip_thought_loss(model: SkipThought, batch: TripleBatch, label_smoothing: float) -> Tensor:
    """The summed cross-entropy of both decoders (a scalar)."""
    output = model(batch.src, batch.src_lengths, batch.previous_in, batch.next_in)
    return sequence_loss(output.previous, batch.previous_out, label_smoothing) + sequence_loss(
        output.next, batch.next_out, label_smoothing
    )


@dataclass(frozen=True)
class SkipThoughtEvaluation:
    """One validation record, also written to RUN_DIR/log.jsonl."""

    step: int
    epoch: int
    train_loss: float  # per target token (both decoders), since the previous evaluation
    valid_loss: float
    target_tokens_per_second: float
    elapsed_seconds: float
    is_best: bool


@dataclass(frozen=True)
class SkipThoughtSummary:
    steps: int
    best_step: int
    best_valid_loss: float
    stop_reason: str
    parameters: int
    elapsed_seconds: float


class SkipThoughtReporter(Protocol):
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: SkipThoughtEvaluation) -> None: ...
    def on_end(self, summary: SkipThoughtSummary) -> None: ...


def _read_sentence_documents(path: str, what: str) -> list[list[str]]:
    if not path:
        raise DataError(f"--{what}: a sentence file is needed for --task skip-thought")
    return read_documents(read_nonempty_file(Path(path)))


class SkipThoughtTrainer:
    """Holds the model, optimizer and triples of one skip-thought run, and trains it."""

    def __init__(self, config: Config, run_dir: Path, device: torch.device):
        self.config, self.run_dir, self.device = config, Path(run_dir), device
        torch.manual_seed(config.train.seed)
        random.seed(config.train.seed)
        train_docs = _read_sentence_documents(config.data.train, "train")
        valid_docs = _read_sentence_documents(config.data.valid, "valid")
        tok = config.tokenizer
        spec = TokenizerSpec(tok.type, tok.vocab_size, tok.character_coverage)
        self.tokenizer = (
            Tokenizer.load(Path(tok.src_model))
            if tok.src_model
            else Tokenizer(train_sentencepiece([s for d in train_docs for s in d], spec))
        )
        limit = config.data.max_tokens_per_sentence
        self.train_triples = make_triples([self.tokenizer.encode(d) for d in train_docs], limit)
        self.valid_triples = make_triples([self.tokenizer.encode(d) for d in valid_docs], limit)
        if not self.train_triples or not self.valid_triples:
            raise DataError("--train/--valid: need documents of at least three non-empty sentences")
        self.model = SkipThought(config.model, self.tokenizer.vocab_size).to(device)
        self.optimizer = make_optimizer(self.model, config.train.learning_rate)

    def train_step(self, triples: list[Triple]) -> tuple[float, int]:
        """One update; returns the summed loss and the number of target tokens."""
        batch = collate_triples(triples, self.device)
        loss_sum = skip_thought_loss(self.model, batch, self.config.train.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum / batch.n_tgt_tokens).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.clip_norm)
        self.optimizer.step()
        return loss_sum.item(), batch.n_tgt_tokens

    @torch.inference_mode()
    def validation_loss(self) -> float:
        self.model.eval()
        total, tokens = 0.0, 0
        for indices in triple_batches(self.valid_triples, self.config.train.batch_tokens, seed=0):
            batch = collate_triples([self.valid_triples[i] for i in indices], self.device)
            total += skip_thought_loss(self.model, batch, 0.0).item()
            tokens += batch.n_tgt_tokens
        self.model.train()
        return total / max(tokens, 1)

    def run(self, reporter: SkipThoughtReporter) -> SkipThoughtSummary:
        """Train until max steps, max epochs, the time limit or early stopping on validation loss."""
        cfg = self.config.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.save_config(self.run_dir, self.config)
        checkpoint.save_tokenizers(self.run_dir, self.tokenizer, self.tokenizer)
        reporter.on_start(
            cfg.max_steps,
            {
                "parameters": self.model.count_parameters(),
                "train_triples": len(self.train_triples),
                "valid_triples": len(self.valid_triples),
                "vocab": self.tokenizer.vocab_size,
                "device": str(self.device),
            },
        )
        loop = _Loop(start=time.monotonic())
        self.model.train()
        stop_reason = "max_epochs"
        for epoch in range(1, cfg.max_epochs + 1):
            loop.epoch = epoch
            stop_reason = self._run_epoch(loop, reporter)
            if stop_reason:
                break
        else:
            stop_reason = "max_epochs"
        if loop.step > loop.last_eval_step:
            self._evaluate(loop, reporter)
        summary = SkipThoughtSummary(
            loop.step,
            loop.best_step,
            round(loop.best_loss, 4),
            stop_reason,
            self.model.count_parameters(),
            round(time.monotonic() - loop.start, 1),
        )
        reporter.on_end(summary)
        return summary

    def _run_epoch(self, loop: _Loop, reporter: SkipThoughtReporter) -> str:
        """One pass over the triples; returns why training must stop, or '' to go on."""
        cfg = self.config.train
        batches = triple_batches(self.train_triples, cfg.batch_tokens, seed=cfg.seed * 1000 + loop.epoch)
        for indices in batches:
            loss_sum, n_tokens = self.train_step([self.train_triples[i] for i in indices])
            if not math.isfinite(loss_sum):
                raise DataError(f"training diverged: non-finite loss at step {loop.step + 1}")
            loop.step += 1
            loop.loss_sum += loss_sum
            loop.tokens += n_tokens
            speed = loop.tokens / max(time.monotonic() - loop.interval_start, 1e-9)
            reporter.on_step(loop.step, loss_sum / n_tokens, speed, 1.0)
            if loop.step % cfg.eval_every == 0:
                self._evaluate(loop, reporter)
                if loop.evals_without_gain >= cfg.patience:
                    return "early_stopping"
            if loop.step >= cfg.max_steps:
                return "max_steps"
            if cfg.max_minutes and time.monotonic() - loop.start >= cfg.max_minutes * 60:
                return "max_minutes"
        return ""

    def _evaluate(self, loop: _Loop, reporter: SkipThoughtReporter) -> None:
        seconds = time.monotonic() - loop.interval_start
        valid_loss = self.validation_loss()
        is_best = valid_loss < loop.best_loss
        evaluation = SkipThoughtEvaluation(
            step=loop.step,
            epoch=loop.epoch,
            train_loss=round(loop.loss_sum / max(loop.tokens, 1), 4),
            valid_loss=round(valid_loss, 4),
            target_tokens_per_second=round(loop.tokens / max(seconds, 1e-9), 1),
            elapsed_seconds=round(time.monotonic() - loop.start, 1),
            is_best=is_best,
        )
        tokenizers = (self.tokenizer, self.tokenizer)
        info = {"step": loop.step, "epoch": loop.epoch, "valid_loss": valid_loss}
        checkpoint.save_weights(self.run_dir / checkpoint.LAST, self.model, tokenizers, info)
        if is_best:
            checkpoint.save_weights(self.run_dir / checkpoint.BEST, self.model, tokenizers, info)
            loop.best_loss, loop.best_step, loop.evals_without_gain = valid_loss, loop.step, 0
        else:
            loop.evals_without_gain += 1
        checkpoint.append_log(self.run_dir, asdict(evaluation))
        reporter.on_evaluation(evaluation)
        loop.last_eval_step = loop.step
        loop.loss_sum, loop.tokens, loop.interval_start = 0.0, 0, time.monotonic()


@dataclass
class _Loop:
    """Counters of the running loop."""

    start: float
    step: int = 0
    epoch: int = 0
    loss_sum: float = 0.0
    tokens: int = 0
    interval_start: float = 0.0
    last_eval_step: int = 0
    best_step: int = 0
    best_loss: float = math.inf
    evals_without_gain: int = 0

    def __post_init__(self) -> None:
        self.interval_start = self.start


class SentenceEncoder:
    """A trained skip-thought encoder: text lines -> sentence vectors."""

    def __init__(self, model: SkipThought, tokenizer: Tokenizer, max_tokens: int, device: torch.device):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.max_tokens = max_tokens  # longer sentences are cut, as in training

    @classmethod
    def from_run_dir(cls, run_dir: Path, device: torch.device) -> SentenceEncoder:
        run = checkpoint.load_run(run_dir)
        if run.config.data.task != TASK:
            raise RunDirError(f"{run_dir}: a {run.config.data.task} run, `seqcli embed` needs a {TASK} run")
        model = SkipThought(run.config.model, run.src_tokenizer.vocab_size)
        checkpoint.load_state_into(model, run.tensors, Path(run_dir) / checkpoint.BEST)
        return cls(
            model.to(device).eval(), run.src_tokenizer, run.config.data.max_tokens_per_sentence, device
        )

    @property
    def size(self) -> int:
        return self.model.config.hidden_size

    @torch.inference_mode()
    def embed(self, lines: list[str], batch_size: int = 128) -> np.ndarray:
        """(N, H) float32 skip-thought vectors; an empty line gets the zero vector."""
        ids = [s[: self.max_tokens] for s in self.tokenizer.encode(lines)]
        vectors = np.zeros((len(lines), self.size), dtype=np.float32)
        order = sorted((i for i, s in enumerate(ids) if s), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            src = pad([ids[i] for i in chunk]).to(self.device)
            lengths = torch.tensor([len(ids[i]) for i in chunk], dtype=torch.long)
            vectors[chunk] = self.model.embed(src, lengths).float().cpu().numpy()  # (b, H)
        return vectors

    @torch.inference_mode()
    def embed_bag_of_words(self, lines: list[str]) -> np.ndarray:
        """The baseline: the mean of the encoder's own piece embeddings, (N, E) float32."""
        table = self.model.encoder.embedding.weight.float().cpu().numpy()  # (V, E)
        vectors = np.zeros((len(lines), table.shape[1]), dtype=np.float32)
        for row, pieces in enumerate(self.tokenizer.encode(lines)):
            if pieces:
                vectors[row] = table[pieces].mean(axis=0)
        return vectors
