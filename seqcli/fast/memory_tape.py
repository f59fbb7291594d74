"""Dot and general attention over many training steps with the memory's gradient summed once.

A faster equivalent of calling `seqcli.model.attention.dot_attend` at every step of a
teacher-forced unroll: same contexts, weights and gradients (tests/test_fast_paths.py).
`TapedDotAttention` and `TapedGeneralAttention` are the reference modules with the tape: in
training, their memory opens a tape that every step then attends through.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqcli.model.attention import Attended, Attention, DotAttention, GeneralAttention, Memory, dot_attend


class MemoryTape:
    """Dot and general attention for many decoder steps over one memory, with the memory's
    gradient summed once after them instead of at every step.

    A step's scores are q_t . k_s and its context sum_s a_ts v_s, so the memory's gradient is
    dK = sum_t dscores_t^T q_t and dV = sum_t a_t^T dcontext_t: at every step autograd would
    write two (rows, S, H) outer products and add them into the memory's gradient. Here each
    step's backward returns only the query's gradient and keeps its four small factors; the
    node that handed out the memory (`open`), which autograd runs after every step that read
    it, multiplies them out in two batched products; on a CPU the per-step memory-sized
    writes are a large share of a mixed-length training batch (docs/benchmarks.md).
    """

    def __init__(self) -> None:
        # Per attending call: its score and context gradients, queries and weights, each (N, T, .)
        self.records: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def open(self, memory: Memory) -> TapedMemory:
        """The memory whose keys and values the tape's steps read and sum gradients for."""
        keys, values = _TapeOpen.apply(memory.keys, memory.values, self)
        return TapedMemory(values, keys, memory.mask, memory.summary, self)

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        """query (N, T, H) against an opened memory -> context (N, T, H), weights (N, T, S)."""
        context, weights = _TapeStep.apply(query, memory.keys, memory.values, memory.mask, self)
        return Attended(context, weights)

    def memory_gradients(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """dK = sum_t dscores_t^T q_t and dV = sum_t a_t^T dcontext_t over every recorded step."""
        d_scores, queries, weights, d_contexts = (
            torch.cat(parts, dim=1) for parts in zip(*self.records, strict=True)
        )
        self.records.clear()
        d_keys = torch.bmm(d_scores.transpose(1, 2), queries)  # (N, S, Hk)
        d_values = torch.bmm(weights.transpose(1, 2), d_contexts)  # (N, S, H)
        return d_keys.to(keys.dtype), d_values.to(values.dtype)


@dataclass
class TapedMemory(Memory):
    """A memory opened by a tape (training only; `select`, for search, gives a plain one)."""

    tape: MemoryTape | None = None


class TapedAttention(Attention):
    """An attention with dot-product scores whose training steps attend through a MemoryTape."""

    def make_memory(self, values: Tensor, mask: Tensor, summary: Tensor) -> Memory:
        memory = super().make_memory(values, mask, summary)
        if self.training and torch.is_grad_enabled():
            return MemoryTape().open(memory)
        return memory

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        if isinstance(memory, TapedMemory) and memory.tape is not None:
            return memory.tape.attend(query, memory)
        return super().attend(query, memory)


class TapedDotAttention(TapedAttention, DotAttention):
    """Luong dot attention, taped in training."""


class TapedGeneralAttention(TapedAttention, GeneralAttention):
    """Luong general attention, taped in training."""


class _TapeOpen(torch.autograd.Function):
    @staticmethod
    def forward(ctx, keys: Tensor, values: Tensor, tape: MemoryTape):
        ctx.tape = tape
        ctx.save_for_backward(keys, values)
        ctx.set_materialize_grads(False)
        return keys.view_as(keys), values.view_as(values)

    @staticmethod
    def backward(ctx, d_keys: Tensor | None, d_values: Tensor | None):
        keys, values = ctx.saved_tensors
        tape_keys, tape_values = ctx.tape.memory_gradients(keys, values)
        # Any other use of the opened keys or values adds its own gradient.
        return (
            tape_keys if d_keys is None else tape_keys + d_keys,
            tape_values if d_values is None else tape_values + d_values,
            None,
        )


class _TapeStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, keys, values, mask, tape):
        context, weights = dot_attend(query, keys, values, mask)  # (N, T, H), (N, T, S)
        ctx.save_for_backward(query, keys, values, weights)
        ctx.tape, ctx.query_dtype = tape, query.dtype
        ctx.set_materialize_grads(False)
        return context, weights

    @staticmethod
    def backward(ctx, d_context, d_weights):
        query, keys, values, weights = (t.float() for t in ctx.saved_tensors)
        if d_context is None:
            d_context = torch.zeros_like(query[..., :1].expand(-1, -1, values.size(2)))
        d_context = d_context.float()
        d_attention = torch.bmm(d_context, values.transpose(1, 2))  # (N, T, S)
        if d_weights is not None:
            d_attention = d_attention + d_weights.float()
        d_scores = weights * (d_attention - (weights * d_attention).sum(-1, keepdim=True))
        d_query = torch.bmm(d_scores, keys)  # (N, T, Hk)
        ctx.tape.records.append((d_scores, query, weights, d_context))
        return d_query.to(ctx.query_dtype), None, None, None, None
