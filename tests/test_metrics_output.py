"""Scoring writes nothing to stderr: sacreBLEU's own warnings do not reach seqcli's users."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from seqcli.metrics import score

# More than the 100 lines ending in " ." after which sacreBLEU warns about tokenized input.
TOKENIZED = [f"a man rides horse number {i} ." for i in range(150)]


def test_tokenized_periods_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        scores = score(TOKENIZED, TOKENIZED)
    assert scores.bleu == 100.0
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sacrebleu")] == []


def test_tokenized_periods_print_nothing_in_a_fresh_process() -> None:
    program = (
        "import sys; from seqcli.metrics import score; lines = sys.stdin.read().splitlines(); "
        "score(lines, lines)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        input="\n".join(TOKENIZED),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
