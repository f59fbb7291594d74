import pytest

from seqcli.errors import DataError
from seqcli.metrics import exact_match, score


def test_identical_text_scores_100() -> None:
    lines = ["A man rides a horse .", "Two dogs play in the snow ."]
    scores = score(lines, lines)
    assert scores.bleu == 100.0 and scores.chrf == 100.0 and scores.exact_match == 100.0
    assert "tok:13a" in scores.bleu_signature and "nc:6" in scores.chrf_signature


def test_partial_overlap_scores_between() -> None:
    scores = score(["A man rides a brown horse ."], ["A man rides a horse ."])
    assert 0 < scores.bleu < 100 and 0 < scores.chrf < 100 and scores.exact_match == 0.0


def test_line_counts_must_match() -> None:
    with pytest.raises(DataError, match="ref.txt has 2 lines but the hypotheses have 1"):
        score(["a"], ["a", "b"], ref_name="ref.txt")


def test_exact_match_ignores_outer_whitespace() -> None:
    assert exact_match([" 2023-01-01 ", "x"], ["2023-01-01", "y"]) == 50.0
