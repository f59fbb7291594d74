"""Skip-thought training on a sentence file, and sentence vectors from its run directory.

The training file has one sentence per line; a blank line ends a document, and only
sentences with a neighbour on both sides in the same document become training triples
(previous, current, next). The run directory has the translation layout (config.toml with
data.task = "skip-thought", src.spm = tgt.spm, best/last weights, log.jsonl).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqcli import checkpoint
from seqcli.config import Config
from seqcli.corpus import Example, bucket_batches, pad
from seqcli.errors import DataError, RunDirError
from seqcli.kernels import KERNELS, Kernels
from seqcli.model.skipthought import SkipThought, SkipThoughtOutput
from seqcli.sentences import read_documents
from seqcli.task import BatchLoss, BestRule, TaskSetting
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
    """Every sentence with a neighbour on both sides; sentences are cut to max_tokens pieces
    (0: not cut)."""
    triples = []
    for sentences in documents:
        cut = [s[:max_tokens] for s in sentences] if max_tokens else sentences
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


def skip_thought_loss(
    output: SkipThoughtOutput, batch: TripleBatch, label_smoothing: float, kernels: Kernels
) -> Tensor:
    """The summed cross-entropy of both decoders (a scalar)."""
    loss = kernels.sequence_loss
    return loss(output.previous, batch.previous_out, label_smoothing) + loss(
        output.next, batch.next_out, label_smoothing
    )


def _read_sentence_documents(path: str, what: str) -> list[list[str]]:
    if not path:
        raise DataError(f"--{what}: a sentence file is needed for --task skip-thought")
    return read_documents(read_nonempty_file(Path(path)))


class SkipThoughtTask:
    """Skip-thought as a training task (`seqcli.task.TrainingTask`): triples in, best = lowest
    validation loss. One SentencePiece model serves encoder and decoders (src.spm = tgt.spm)."""

    best = BestRule("valid_loss", higher_is_better=False)

    def __init__(self, config: Config, setting: TaskSetting, tokenizers: tuple[Tokenizer, Tokenizer] | None):
        self.config, self.setting, self.device = config, setting, setting.device
        self.warnings: list[str] = []
        train_docs = _read_sentence_documents(config.data.train, "train")
        valid_docs = _read_sentence_documents(config.data.valid, "valid")
        self.tokenizer = (
            tokenizers[0] if tokenizers else setting.world.from_main(lambda: self._tokenizer(train_docs))
        )
        self.tokenizers = (self.tokenizer, self.tokenizer)
        limit = config.data.max_tokens_per_sentence
        self.train_items = make_triples([self.tokenizer.encode(d) for d in train_docs], limit)
        self.valid_triples = make_triples([self.tokenizer.encode(d) for d in valid_docs], limit)
        if not self.train_items or not self.valid_triples:
            raise DataError("--train/--valid: need documents of at least three non-empty sentences")
        self.kernels = KERNELS[config.train.kernels]
        self.model = SkipThought(config.model, self.tokenizer.vocab_size, self.kernels.parts).to(self.device)

    def _tokenizer(self, train_docs: list[list[str]]) -> Tokenizer:
        tok = self.config.tokenizer
        if tok.src_model:
            return Tokenizer.load(Path(tok.src_model))
        if tok.type == "auto" or not tok.vocab_size:  # books are natural language: subwords
            tok = replace(tok, type=tok.type.replace("auto", "unigram"), vocab_size=tok.vocab_size or 8000)
            self.config = replace(self.config, tokenizer=tok)
        spec = TokenizerSpec(tok.type, tok.vocab_size, tok.character_coverage)
        return Tokenizer(train_sentencepiece([s for d in train_docs for s in d], spec))

    def info(self) -> dict[str, object]:
        return {
            "parameters": self.model.count_parameters(),
            "train_triples": len(self.train_items),
            "valid_triples": len(self.valid_triples),
            "vocab": self.tokenizer.vocab_size,
        }

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        cfg = self.config.train
        return triple_batches(self.train_items, cfg.batch_tokens, seed=cfg.seed * 1000 + epoch)

    def batch_loss(self, model: nn.Module, items: Sequence[Triple], step: int) -> BatchLoss:
        batch = collate_triples(list(items), self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.setting.use_bf16):
            output = model(batch.src, batch.src_lengths, batch.previous_in, batch.next_in)
        loss_sum = skip_thought_loss(output, batch, self.config.train.label_smoothing, self.kernels)
        return BatchLoss(loss_sum, batch.n_tgt_tokens, loss_sum)

    def gold_probability(self, step: int) -> float:
        return 1.0  # both decoders are always fed the gold sentences

    @torch.inference_mode()
    def validation_loss(self) -> float:
        """Loss per target token (both decoders) on the validation triples (no label smoothing)."""
        self.model.eval()
        total, tokens = 0.0, 0
        for indices in triple_batches(self.valid_triples, self.config.train.batch_tokens, seed=0):
            batch = collate_triples([self.valid_triples[i] for i in indices], self.device)
            output = self.model(batch.src, batch.src_lengths, batch.previous_in, batch.next_in)
            total += skip_thought_loss(output, batch, 0.0, self.kernels).item()
            tokens += batch.n_tgt_tokens
        self.model.train()
        return total / max(tokens, 1)

    def validate(self) -> dict[str, float]:
        return {"valid_loss": round(self.validation_loss(), 4)}

    def state(self) -> dict[str, Any]:
        return {}  # the objective keeps nothing between batches

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def after_training(
        self, run_dir: Path, seconds_left: Callable[[], float], note: Callable[[str], None]
    ) -> dict[str, object]:
        return {}  # nothing to tune: the best weights are the sentence encoder

    def after_training_in_validations(self) -> float:
        return 0.0


class SentenceEncoder:
    """A trained skip-thought encoder: text lines -> sentence vectors."""

    def __init__(self, model: SkipThought, tokenizer: Tokenizer, max_tokens: int, device: torch.device):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.max_tokens = max_tokens or None  # longer sentences are cut, as in training (0: not)

    @classmethod
    def from_run_dir(cls, run_dir: Path, device: torch.device) -> SentenceEncoder:
        run = checkpoint.load_run(run_dir)
        if run.config.data.task != TASK:
            raise RunDirError(f"{run_dir}: a {run.config.data.task} run, `seqcli embed` needs a {TASK} run")
        model = SkipThought(
            run.config.model, run.src_tokenizer.vocab_size, KERNELS[run.config.train.kernels].parts
        )
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
