"""Attention: score a query against the encoder states and mix them into a context vector.

Every module maps a query (N, T, H) and the decoder's `Memory` to an `Attended`: the context
(N, T, H), the weights (N, T, S) it was mixed with, and for hard attention the position
choice its REINFORCE term needs. Keys are projected once per sentence by `project_keys` and
kept in the memory, so nothing is cached on the module. Padding positions (mask False) get
exactly zero weight.

`read_out` is the decoder's steps 5 and 6, the attentional vector a = tanh(W_c [h; c]) and the
output layer, which hard attention does per source position (`mixes_outputs`).

Facts each module declares about itself, which the decoder and seqcli.fast read (neither
checks classes):
  attends_before_rnn: the context is an input of the RNN step (Bahdanau: attend from the
    previous state s_{t-1}; the fixed context) rather than combined with its output (Luong:
    attend from the new state h_t);
  reads_query: the context depends on the decoder state at all (not for the fixed context);
  dot_product_scores: its scores are q . k_s (dot, general), which seqcli.fast's MemoryTape
    computes with one memory-sized gradient per pass instead of one per decoder step;
  mixes_outputs: it reads the output out at every source position and mixes the distributions
    (hard attention), so its read-out is more than the attentional vector's.
Every module is built as Module(query_size, value_size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Memory:
    """Per-sentence encoder results the decoder reads at every step.

    values (N, S, H), keys (N, S, Hk) as projected by the attention, mask (N, S),
    summary (N, H): the encoder's final top-layer state, the fixed context without attention.
    """

    values: Tensor
    keys: Tensor
    mask: Tensor
    summary: Tensor

    def select(self, index: Tensor) -> Memory:
        """The sentences at index (K,), in that order (search hypotheses, sorted batches)."""
        values, keys, mask, summary = (
            t.index_select(0, index) for t in (self.values, self.keys, self.mask, self.summary)
        )
        return Memory(values, keys, mask, summary)


@dataclass
class Attended:
    """context (N, T, H); weights (N, T, S), None for the fixed context."""

    context: Tensor
    weights: Tensor | None = None


@dataclass
class Readout:
    """What the decoder reads out at some target positions: logits (..., V), and the attentional
    vectors (..., H) fed to the next step. The leading shape is (N, T), or (R,) for the real
    positions of a training batch."""

    logits: Tensor
    feed: Tensor

    def at(self, real: Tensor) -> Readout:
        """The positions in real (B, T) only, in row order."""
        return Readout(self.logits[real], self.feed[real])

    @classmethod
    def cat(cls, steps: list[Readout]) -> Readout:
        """Per-step read-outs, each (N, 1, ...), -> one (N, T, ...)."""
        return cls(torch.cat([s.logits for s in steps], dim=1), torch.cat([s.feed for s in steps], dim=1))


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension, ignoring positions where mask is False.

    scores (B, T, S), mask (B, S) -> weights (B, T, S)
    """
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)


def dot_attend(query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Scores q . k_s, masked softmax, weighted values: context (B, T, H), weights (B, T, S)."""
    scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
    weights = masked_softmax(scores, mask)
    return torch.bmm(weights, values), weights


class Attention(nn.Module):
    """The interface of every attention module; soft ones implement `forward`."""

    attends_before_rnn = False
    reads_query = True
    dot_product_scores = False
    mixes_outputs = False

    def __init__(self, query_size: int, value_size: int):
        super().__init__()

    def project_keys(self, values: Tensor) -> Tensor:
        """values (N, S, H) -> keys (N, S, Hk), once per sentence."""
        return values

    def make_memory(self, values: Tensor, mask: Tensor, summary: Tensor) -> Memory:
        """What the decoder reads at every step: values (N, S, H), their keys, mask (N, S),
        summary (N, H)."""
        return Memory(values, self.project_keys(values), mask, summary)

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        """query (N, T, H) against the memory -> context (N, T, H), weights (N, T, S)."""
        context, weights = self(query, memory.keys, memory.values, memory.mask)
        return Attended(context, weights)

    def read_out(
        self,
        query: Tensor,
        attended: Attended,
        memory: Memory,
        combine: nn.Linear,
        combine_dropout: nn.Module,
        to_logits: Callable[[Tensor], Tensor],
        real: Tensor | None = None,
    ) -> Readout:
        """The decoder's steps 5-6: a = tanh(W_c [h; c]) (combine, with dropout on [h; c]), then
        its output layer (to_logits). query (N, T, H), the decoder's RNN outputs; with real
        (N, T) bool, only those positions."""
        attentional = torch.tanh(combine(combine_dropout(torch.cat([query, attended.context], dim=-1))))
        if real is not None:
            attentional = attentional[real]  # (R, H)
        return Readout(to_logits(attentional), attentional)


class DotAttention(Attention):
    """Luong dot: score(h_t, h_s) = h_t . h_s; needs query and value sizes to match."""

    dot_product_scores = True

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return dot_attend(query, keys, values, mask)


class GeneralAttention(DotAttention):
    """Luong general: score(h_t, h_s) = h_t . (W h_s), with W h_s computed once per sentence."""

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        self.key_projection = nn.Linear(value_size, query_size, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)


class AdditiveAttention(Attention):
    """Bahdanau: score(s_{t-1}, h_s) = v . tanh(W_q s_{t-1} + W_k h_s), from the previous state."""

    attends_before_rnn = True

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        self.key_projection = nn.Linear(value_size, query_size, bias=False)
        self.query_projection = nn.Linear(query_size, query_size, bias=True)
        self.energy = nn.Linear(query_size, 1, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, H)
        scores = self.energy(hidden).squeeze(-1)  # (B, T, S)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights, values), weights


class FixedContext(Attention):
    """No attention (Sutskever et al. 2014, Cho et al. 2014): every step is fed the same
    context, the encoder's final state, whatever the decoder state."""

    attends_before_rnn = True
    reads_query = False

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        return Attended(memory.summary.unsqueeze(1).expand_as(query))  # (N, T, H)
