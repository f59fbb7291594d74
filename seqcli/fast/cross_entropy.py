"""Label-smoothed cross-entropy with its gradient written in one pass.

The same value and gradient as `seqcli.loss.sequence_loss` (tests/test_fast_paths.py), at
about half its cost on a CPU, where the output layer's loss is a large share of a step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqcli.vocab import PAD_ID


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Summed label-smoothed cross-entropy of (N, V) logits, with its gradient in one pass.

    With log-probabilities l = log_softmax(z): loss_n = -(1 - eps) * l_n,y - eps * mean_v l_n,v;
    d loss_n / d z_n = softmax(z_n) - (1 - eps) * onehot(y) - eps / V.

    The forward pass keeps torch's fused log-softmax (one pass over the logits) and the
    backward pass writes one (N, V) tensor, exp(l), instead of building the log-softmax
    gradient, a zero-filled NLL gradient and the smoothing term separately.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, eps: float, real: Tensor) -> Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
        per_token = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        if eps > 0:
            per_token = (1 - eps) * per_token - eps * log_probs.mean(dim=-1)
        ctx.save_for_backward(log_probs, target, real)
        ctx.eps = eps
        return per_token.masked_fill(~real, 0.0).sum()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        log_probs, target, real = ctx.saved_tensors
        eps = ctx.eps
        grad = torch.exp(log_probs)  # softmax, (N, V)
        if eps > 0:
            grad.sub_(eps / log_probs.size(1))
        grad.scatter_add_(1, target.unsqueeze(1), grad.new_full((grad.size(0), 1), -(1 - eps)))
        grad.mul_((real.to(grad.dtype) * grad_output).unsqueeze(1))
        return grad, None, None, None


def fused_sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    """`seqcli.loss.sequence_loss`, fused. logits (B, T, V) or (N, V), tgt_out (B, T) or (N,) -> scalar."""
    flat = logits.reshape(-1, logits.size(-1)).float()
    target = tgt_out.reshape(-1)
    return _SmoothedCrossEntropy.apply(flat, target, label_smoothing, target != PAD_ID)
