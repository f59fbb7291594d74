"""Scheduled teacher forcing: how likely the decoder is fed the gold previous token.

Bengio et al. (2015) decay the probability of feeding the gold token over training so that
the model learns to continue from its own predictions, as it must at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TeacherForcingSchedule:
    """Probability of the gold token after `step` updates.

    constant:        start
    linear:          max(minimum, start - slope * step)
    exponential:     max(minimum, k ** step)             (k < 1)
    inverse_sigmoid: k / (k + exp(step / k))             (k >= 1)
    """

    kind: str = "constant"
    start: float = 1.0
    minimum: float = 0.0
    slope: float = 1e-4
    k: float = 0.9999

    def gold_probability(self, step: int) -> float:
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return max(self.minimum, self.start - self.slope * step)
        if self.kind == "exponential":
            return max(self.minimum, self.k**step)
        if self.kind == "inverse_sigmoid":
            exponent = step / self.k
            return 0.0 if exponent > 700 else self.k / (self.k + math.exp(exponent))
        raise ValueError(f"unknown teacher-forcing schedule {self.kind!r}")


def draw_gold_mask(shape: tuple[int, int], probability: float, generator: torch.Generator) -> Tensor | None:
    """(B, T) coin flips, True = feed the gold token; None when every flip would be gold."""
    if probability >= 1.0:
        return None
    return torch.rand(shape, generator=generator) < probability


def mix_predictions(tgt_in: Tensor, predicted: Tensor, use_gold: Tensor) -> Tensor:
    """Parallel scheduled sampling's decoder inputs (Duckworth et al. 2019).

    tgt_in (B, T) gold inputs starting with BOS; predicted (B, T) the model's most probable
    token at each position of a teacher-forced pass, i.e. its guess for input t + 1;
    use_gold (B, T) coin flips. Input 0 stays BOS; input t > 0 is gold where use_gold, else
    predicted[:, t - 1].
    """
    shifted = torch.cat([tgt_in[:, :1], predicted[:, :-1]], dim=1)
    return torch.where(use_gold, tgt_in, shifted)
