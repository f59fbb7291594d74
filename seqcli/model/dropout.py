"""Variational dropout: one mask per sentence, the same at every step of a sequence."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.nn import functional as F


class VariationalDropout(nn.Module):
    """Dropout whose mask is drawn once per sentence and feature for a (B, T, F) sequence and
    shared by its T steps (Gal and Ghahramani 2016), so a unit is dropped for a whole sentence
    rather than at scattered steps. Other shapes (one step, (N, 1, F) or (N, F)) get ordinary
    dropout. Each kept unit is scaled by 1 / (1 - p), as nn.Dropout does."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.dim() != 3 or x.size(1) == 1:
            return F.dropout(x, self.p, True)
        keep = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1.0 - self.p)  # (B, 1, F)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_dropout(p: float, variational: bool, plain: Callable[[float], nn.Module] = nn.Dropout) -> nn.Module:
    """The dropout a sequence passes through: variational (one mask per sentence) or `plain`,
    one mask per position (nn.Dropout, or the faster equivalent a model's parts supply)."""
    return VariationalDropout(p) if variational else plain(p)
