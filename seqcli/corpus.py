"""Parallel corpora: reading PREFIX.LANG files, length filters and token-bucketed batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from seqcli.errors import DataError
from seqcli.textio import read_nonempty_file
from seqcli.tokenizer import Sampling, Tokenizer
from seqcli.vocab import BOS_ID, EOS_ID, PAD_ID


def corpus_paths(prefix: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
    return Path(f"{prefix}.{src_lang}"), Path(f"{prefix}.{tgt_lang}")


def read_parallel(prefix: str, src_lang: str, tgt_lang: str) -> tuple[list[str], list[str]]:
    """The two sides of PREFIX.SRC / PREFIX.TGT, checked to be non-empty and aligned."""
    src_path, tgt_path = corpus_paths(prefix, src_lang, tgt_lang)
    src, tgt = read_nonempty_file(src_path), read_nonempty_file(tgt_path)
    if len(src) != len(tgt):
        raise DataError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: parallel files must align"
        )
    return src, tgt


@dataclass(frozen=True)
class Example:
    """One training pair as piece ids, without BOS/EOS."""

    src: list[int]
    tgt: list[int]


@dataclass(frozen=True)
class EncodedCorpus:
    examples: list[Example]
    n_filtered: int  # pairs dropped: an empty side, or longer than the limit


def encode_parallel(
    src_lines: list[str],
    tgt_lines: list[str],
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    max_tokens: int,
    sampling: Sampling | None = None,
) -> EncodedCorpus:
    """Encode aligned lines, dropping pairs with an empty side or a side over max_tokens.
    sampling: draw each segmentation (subword regularization) instead of taking the best."""
    src_ids = src_tokenizer.encode(src_lines, sampling)
    tgt_ids = tgt_tokenizer.encode(tgt_lines, sampling)
    examples = [
        Example(s, t)
        for s, t in zip(src_ids, tgt_ids, strict=True)
        if 0 < len(s) <= max_tokens and 0 < len(t) <= max_tokens
    ]
    return EncodedCorpus(examples, len(src_ids) - len(examples))


@dataclass
class Batch:
    """Padded tensors for a group of pairs.

    src (B, S), src_lengths (B,), tgt_in (B, T) starting with BOS, tgt_out (B, T) ending
    with EOS; padding is PAD_ID.
    """

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    @property
    def n_tgt_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(
            *(
                t.to(device, non_blocking=True)
                for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out)
            )
        )


def pad(sequences: list[list[int]]) -> Tensor:
    """(B, max length) long tensor, right-padded with PAD_ID."""
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), max(width, 1)), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def collate(examples: list[Example]) -> Batch:
    src = pad([e.src for e in examples])
    lengths = torch.tensor([len(e.src) for e in examples], dtype=torch.long)
    tgt_in = pad([[BOS_ID] + e.tgt for e in examples])
    tgt_out = pad([e.tgt + [EOS_ID] for e in examples])
    return Batch(src, lengths, tgt_in, tgt_out)


def _padded_size(example: Example) -> int:
    return max(len(example.src), len(example.tgt) + 1)


def bucket_batches(examples: list[Example], batch_tokens: int, seed: int) -> list[list[int]]:
    """Group example indices into batches of about batch_tokens padded tokens.

    Examples are sorted by length (ties broken at random) so that a batch holds pairs of
    similar length and little padding; the order of the batches is then shuffled. The
    result depends only on the examples, batch_tokens and seed, which makes resuming exact.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    order.sort(key=lambda i: (len(examples[i].tgt), len(examples[i].src)))
    batches = _cut(examples, order, batch_tokens, padded=True)
    rng.shuffle(batches)
    return batches


def random_batches(examples: list[Example], batch_tokens: int, seed: int) -> list[list[int]]:
    """Group example indices, in random order, into batches of about batch_tokens real tokens.

    A pair counts max(source, target + 1) tokens, padding not included: the encoder skips
    padding (`cells.run_rnn`) and the training decoder steps only the sentences still going, so a
    batch of mixed lengths costs its real tokens. Every batch mixes short and long pairs,
    which early in training learns more per update than same-length batches do. Depends only
    on the examples, batch_tokens and seed (exact resumption).
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return _cut(examples, order, batch_tokens, padded=False)


def _cut(examples: list[Example], order: list[int], batch_tokens: int, padded: bool) -> list[list[int]]:
    """Cut order into consecutive batches costing at most batch_tokens (a lone pair may cost
    more): padded, the longest pair's size times the pairs; otherwise the sum of their sizes."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = filled = 0
    for index in order:
        size = _padded_size(examples[index])
        cost = max(longest, size) * (len(current) + 1) if padded else filled + size
        if current and cost > batch_tokens:
            batches.append(current)
            current, longest, filled = [], 0, 0
        current.append(index)
        longest, filled = max(longest, size), filled + size
    if current:
        batches.append(current)
    return batches


def make_batches(examples: list[Example], batching: str, batch_tokens: int, seed: int) -> list[list[int]]:
    """Training batches by the configured scheme: "buckets" or "random"."""
    maker = random_batches if batching == "random" else bucket_batches
    return maker(examples, batch_tokens, seed)


def padding_fraction(examples: list[Example], batches: list[list[int]]) -> float:
    """Share of target positions in the batches that are padding."""
    real = sum(len(examples[i].tgt) + 1 for b in batches for i in b)
    padded = sum(max(len(examples[i].tgt) + 1 for i in b) * len(b) for b in batches)
    return 1.0 - real / padded if padded else 0.0
