"""Parallel corpora: reading PREFIX.LANG files, batches of similar or mixed lengths, padded tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqcli.errors import DataError
from seqcli.store import Example
from seqcli.textio import read_nonempty_file
from seqcli.tokenizer import Sampling, Tokenizer
from seqcli.vocab import BOS_ID, EOS_ID, PAD_ID

__all__ = ["Batch", "EncodedCorpus", "Example", "bucket_batches", "collate", "make_batches", "read_parallel"]


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


def lengths_of(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Source and target lengths of examples, each (n,) int."""
    src = np.fromiter((len(e.src) for e in examples), np.int64, len(examples))
    tgt = np.fromiter((len(e.tgt) for e in examples), np.int64, len(examples))
    return src, tgt


def length_batches(
    src_lengths: np.ndarray,
    tgt_lengths: np.ndarray,
    batching: str,
    batch_tokens: int,
    seed: int,
    candidates: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Batches of pair indices (of candidates, or all) by the configured scheme:

    "buckets": sorted by target then source length (ties broken at random), cut into batches
    of at most batch_tokens padded tokens (a batch costs its longest pair's size times its
    pairs), the batches shuffled: little padding, the fewest steps.
    "random": in random order, cut into batches of at most batch_tokens real tokens: the
    encoder skips padding and every batch mixes short and long pairs, which learns more per
    update early on.

    A pair's size is max(source, target + 1) tokens; a lone pair may cost more than the
    budget. The result depends only on the lengths, batch_tokens and seed (exact resumption).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.arange(len(src_lengths)) if candidates is None else candidates)
    if batching == "buckets":
        order = order[np.lexsort((src_lengths[order], tgt_lengths[order]))]  # stable: ties stay random
    sizes = np.maximum(src_lengths[order], tgt_lengths[order] + 1)
    bounds = _padded_cuts(sizes, batch_tokens) if batching == "buckets" else _real_cuts(sizes, batch_tokens)
    batches = [order[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
    if batching == "buckets":
        rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _padded_cuts(sizes: np.ndarray, budget: int) -> list[int]:
    """Batch boundaries in sizes: each batch as many pairs as fit `max size x pairs <= budget`."""
    bounds, start, n = [0], 0, len(sizes)
    while start < n:
        window = 256
        while True:  # grow the window until the budget is passed inside it (or the end is reached)
            longest = np.maximum.accumulate(sizes[start : start + window])
            over = np.nonzero(longest * np.arange(1, len(longest) + 1) > budget)[0]
            if len(over) or start + window >= n:
                break
            window *= 2
        start += max(int(over[0]) if len(over) else len(longest), 1)
        bounds.append(start)
    return bounds


def _real_cuts(sizes: np.ndarray, budget: int) -> list[int]:
    """Batch boundaries in sizes: each batch as many pairs as fit `sum of sizes <= budget`."""
    totals = np.cumsum(sizes)
    bounds, start, n = [0], 0, len(sizes)
    while start < n:
        before = int(totals[start - 1]) if start else 0
        end = int(np.searchsorted(totals, before + budget, side="right"))
        start = max(end, start + 1)
        bounds.append(start)
    return bounds


def bucket_batches(examples: Sequence[Example], batch_tokens: int, seed: int) -> list[list[int]]:
    """`length_batches` "buckets" of a list of examples, as lists of indices."""
    return make_batches(examples, "buckets", batch_tokens, seed)


def random_batches(examples: Sequence[Example], batch_tokens: int, seed: int) -> list[list[int]]:
    """`length_batches` "random" of a list of examples, as lists of indices."""
    return make_batches(examples, "random", batch_tokens, seed)


def make_batches(examples: Sequence[Example], batching: str, batch_tokens: int, seed: int) -> list[list[int]]:
    """Training batches of a list of examples by the configured scheme: "buckets" or "random"."""
    return [b.tolist() for b in length_batches(*lengths_of(examples), batching, batch_tokens, seed)]


def padding_fraction(examples: list[Example], batches: list[list[int]]) -> float:
    """Share of target positions in the batches that are padding."""
    real = sum(len(examples[i].tgt) + 1 for b in batches for i in b)
    padded = sum(max(len(examples[i].tgt) + 1 for i in b) * len(b) for b in batches)
    return 1.0 - real / padded if padded else 0.0
