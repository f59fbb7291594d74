"""Hard attention's mixture of output distributions, computed a block of rows at a time.

The reference (`seqcli.model.hard_attention.MixtureOutput.logits`) writes the mixture as it
reads, log p(v) = logsumexp_j (log alpha_j + log_softmax(z_j)_v), and autograd keeps and walks
several tensors of shape (rows, source positions, vocabulary): on a CPU those passes over
memory, not the output layer's matrix product, take most of an update. Here the forward pass
and a hand-written backward pass go through the rows in blocks small enough to stay in the
processor's cache, and keep only the logits z and per-row figures. With q_jv = alpha_j
softmax(z_j)_v / p(v), the posterior of position j given token v, and g = dLoss/dlog p:

    dLoss/dz_jv      = g_v q_jv - softmax(z_j)_v * sum_v' g_v' q_jv'
    dLoss/dlog alpha_j = sum_v g_v q_jv

tests/test_fast_paths.py checks values and gradients against the reference.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from seqcli.model.hard_attention import HardAttention, MixtureOutput

BLOCK_ELEMENTS = 1 << 18  # rows per block: about this many (rows x positions x vocabulary) floats, 1 MB


class _MixtureLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, log_weights: Tensor) -> Tensor:  # type: ignore[override]
        """z (R, S, V) logits at every position, log_weights (R, S) -> log p (R, V)."""
        z = z.to(torch.promote_types(z.dtype, torch.float32))  # bfloat16 logits mixed in float32
        rows = max(1, BLOCK_ELEMENTS // (z.size(1) * z.size(2)))
        log_norm = z.new_empty(z.shape[:2])  # (R, S): log Z_j
        shift = z.new_empty(z.shape[:2])  # (R, S): log alpha_j - log Z_j
        out = z.new_empty(z.size(0), z.size(2))  # (R, V)
        for start in range(0, z.size(0), rows):
            block = slice(start, start + rows)
            log_norm[block] = torch.logsumexp(z[block], dim=-1)
            shift[block] = log_weights[block].to(z.dtype) - log_norm[block]
            torch.logsumexp(z[block] + shift[block].unsqueeze(-1), dim=1, out=out[block])
        ctx.save_for_backward(z, shift, log_norm, out)
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        z, shift, log_norm, out = ctx.saved_tensors
        grad_z = torch.empty_like(z)
        grad_weights = shift.new_empty(shift.shape)
        softmax = z.new_empty(ctx.rows, *z.shape[1:])  # one block's softmax(z_j), reused
        for start in range(0, z.size(0), ctx.rows):
            block = slice(start, start + ctx.rows)
            zb = z[block]
            n = len(zb)
            q = torch.add(zb, shift[block].unsqueeze(-1), out=grad_z[block])  # computed in place
            q.sub_(out[block].unsqueeze(1)).exp_()  # q_jv, the posterior of position j
            q.mul_(grad[block].unsqueeze(1))  # g_v q_jv
            per_position = q.sum(-1)  # (rows, S)
            torch.sub(zb, log_norm[block].unsqueeze(-1), out=softmax[:n]).exp_()
            q.sub_(softmax[:n].mul_(per_position.unsqueeze(-1)))
            grad_weights[block] = per_position
        return grad_z, grad_weights


class BlockMixtureOutput(MixtureOutput):
    """`MixtureOutput` whose mixture runs through `_MixtureLogProbs`."""

    @cached_property
    def logits(self) -> Tensor:  # type: ignore[override]
        z = self.to_logits(self.attentional)  # (..., S, V)
        positions, vocabulary = z.shape[-2:]
        flat = _MixtureLogProbs.apply(
            z.reshape(-1, positions, vocabulary), self.log_weights.reshape(-1, positions)
        )
        return flat.reshape(*z.shape[:-2], vocabulary)  # type: ignore[no-any-return]


class BlockHardAttention(HardAttention):
    """Hard attention whose read-outs mix their distributions block by block."""

    readout_type = BlockMixtureOutput
