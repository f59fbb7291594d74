"""Medians over repeated measures: what a benchmark run with --rounds N reports."""

from __future__ import annotations

import statistics
from typing import Any


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (to 4 decimals), nested dictionaries figure by
    figure. A figure every round agrees on is kept as it is; one that is not a number and
    differs between rounds (a list of samples, a load average) is left to the rounds."""
    figures: dict[str, Any] = {}
    for key, first in rounds[0].items():
        values = [r[key] for r in rounds]
        if all(v == first for v in values):
            figures[key] = first
        elif isinstance(first, dict):
            figures[key] = medians(values)
        elif isinstance(first, int | float) and not isinstance(first, bool):
            figures[key] = round(statistics.median(values), 4)
    return figures
