"""Dropout with a cheaper mask on CPU, in place of nn.Dropout.

torch's CPU dropout draws its mask with `bernoulli_`, several times slower than drawing
uniform numbers and comparing them with p; the training decoder draws a few masks every
step. Same distribution: each unit is kept with probability 1 - p and scaled by 1 / (1 - p).
Other devices use torch's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout(x, p, training), with the mask drawn as uniform >= p on CPU."""
    if not training or not 0.0 < p < 1.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class Dropout(nn.Module):
    """nn.Dropout with `dropout` above (no parameters, so checkpoints are unchanged)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
