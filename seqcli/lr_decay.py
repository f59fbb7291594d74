"""The learning rate over training: decay on a plateau of validation BLEU, or a schedule by update."""

from __future__ import annotations

import math


def plateau_learning_rate(
    learning_rate: float, evals_without_gain: int, factor: float, patience: int, minimum: float
) -> float:
    """The learning rate after an evaluation.

    evals_without_gain counts the evaluations since the best validation BLEU (0 when this one
    was the best). The rate is multiplied by factor each time that count reaches a multiple of
    patience, and never falls below minimum (nor rises to it when it started lower). Being a
    function of counters the loop already saves, the decay resumes exactly.
    """
    if factor >= 1.0 or evals_without_gain == 0 or evals_without_gain % patience:
        return learning_rate
    return max(learning_rate * factor, min(minimum, learning_rate))


def scheduled_learning_rate(
    base: float, step: int, schedule: str, warmup_steps: int, progress: float, minimum: float
) -> float:
    """The rate of update `step` (0-based) under train.lr_schedule.

    A linear warm-up first: update s < warmup_steps gets base * (s + 1) / warmup_steps. Then
    "constant" keeps base; "inverse_sqrt" falls as base * sqrt(warmup_steps / (s + 1)), so it
    meets the warm-up at its peak; "cosine" follows half a cosine from base down to minimum
    as `progress` (the share of the run's budget used, 0 to 1) goes from 0 to 1.
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "inverse_sqrt":
        return base * warm * min(1.0, math.sqrt(max(warmup_steps, 1) / (step + 1)))
    if schedule == "cosine":
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return warm * (minimum + (base - minimum) * cosine)
    return base * warm
