"""Dot and general attention over many training steps with the memory's gradient summed once.

A faster equivalent of calling `seqcli.model.attention.dot_attend` at every step of a
teacher-forced unroll: same contexts, weights and gradients (tests/test_fast_paths.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqcli.model.attention import Attended, Memory, dot_attend


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

    A step may have fewer rows than the memory: they are its first rows (the sorted,
    shrinking training steps).
    """

    def __init__(self) -> None:
        self.records: list[tuple[int, Tensor, Tensor, Tensor, Tensor]] = []
        self.steps = 0

    def open(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values for `attend`, through the node that receives the summed gradient."""
        return _TapeOpen.apply(keys, values, self)

    def open_memory(self, memory: Memory) -> Memory:
        """The memory whose keys and values the tape's steps read and sum gradients for."""
        keys, values = self.open(memory.keys, memory.values)
        return Memory(values, keys, memory.mask, memory.summary)

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        """query (N, 1, H) against the first N rows of an opened memory -> context, weights."""
        self.steps += 1
        context, weights = _TapeStep.apply(
            query, memory.keys, memory.values, memory.mask, self, self.steps - 1
        )
        return Attended(context, weights)

    def memory_gradients(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        rows, length = keys.size(0), keys.size(1)
        dtype = torch.float32
        score_grads = keys.new_zeros(rows, self.steps, length, dtype=dtype)
        queries = keys.new_zeros(rows, self.steps, keys.size(2), dtype=dtype)
        weights = keys.new_zeros(rows, self.steps, length, dtype=dtype)
        context_grads = keys.new_zeros(rows, self.steps, values.size(2), dtype=dtype)
        for step, d_scores, query, weight, d_context in self.records:
            n = d_scores.size(0)
            score_grads[:n, step], queries[:n, step] = d_scores, query
            weights[:n, step], context_grads[:n, step] = weight, d_context
        self.records.clear()
        d_keys = torch.bmm(score_grads.transpose(1, 2), queries)  # (B, S, Hk)
        d_values = torch.bmm(weights.transpose(1, 2), context_grads)  # (B, S, H)
        return d_keys.to(keys.dtype), d_values.to(values.dtype)


class _TapeOpen(torch.autograd.Function):
    @staticmethod
    def forward(ctx, keys: Tensor, values: Tensor, tape: MemoryTape):
        ctx.tape = tape
        ctx.save_for_backward(keys, values)
        return keys.view_as(keys), values.view_as(values)

    @staticmethod
    def backward(ctx, _d_keys: Tensor, _d_values: Tensor):
        keys, values = ctx.saved_tensors
        return (*ctx.tape.memory_gradients(keys, values), None)


class _TapeStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, keys, values, mask, tape, step):
        rows = query.size(0)
        keys, values = keys[:rows], values[:rows]
        context, weights = dot_attend(query, keys, values, mask[:rows])  # (N, 1, H), (N, 1, S)
        ctx.save_for_backward(query, keys, values, weights)
        ctx.tape, ctx.step, ctx.query_dtype = tape, step, query.dtype
        ctx.set_materialize_grads(False)
        return context, weights

    @staticmethod
    def backward(ctx, d_context, d_weights):
        query, keys, values, weights = (t.float() for t in ctx.saved_tensors)
        if d_context is None:
            d_context = torch.zeros_like(query[..., :1].expand(-1, -1, values.size(2)))
        d_context = d_context.float()
        d_attention = torch.bmm(d_context, values.transpose(1, 2))  # (N, 1, S)
        if d_weights is not None:
            d_attention = d_attention + d_weights.float()
        d_scores = weights * (d_attention - (weights * d_attention).sum(-1, keepdim=True))
        d_query = torch.bmm(d_scores, keys)  # (N, 1, Hk)
        ctx.tape.records.append((ctx.step, d_scores[:, 0], query[:, 0], weights[:, 0], d_context[:, 0]))
        return d_query.to(ctx.query_dtype), None, None, None, None, None
