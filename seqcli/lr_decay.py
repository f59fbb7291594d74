"""Learning-rate decay on a plateau of validation BLEU."""

from __future__ import annotations


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
