"""Tuning the GNMT length penalty on a validation set: beam search with each alpha, scored by BLEU."""

from __future__ import annotations

from dataclasses import dataclass, replace

from seqcli.metrics import Scores, score
from seqcli.translate import Translator


@dataclass(frozen=True)
class PenaltyResult:
    alpha: float
    scores: Scores


def tune_length_penalty(
    translator: Translator, src_lines: list[str], tgt_lines: list[str], alphas: list[float]
) -> list[PenaltyResult]:
    """Translate the sources once per alpha (the translator's beam size) and score each."""
    original = translator.decode
    results = []
    try:
        for alpha in alphas:
            translator.decode = replace(original, length_penalty=alpha, n_best=1)
            results.append(PenaltyResult(alpha, score(translator.translate_lines(src_lines), tgt_lines)))
    finally:
        translator.decode = original
    return results


def best_alpha(results: list[PenaltyResult]) -> PenaltyResult:
    """The highest BLEU; among ties the smallest alpha (the first tried when sorted)."""
    return max(sorted(results, key=lambda r: r.alpha), key=lambda r: r.scores.bleu)
