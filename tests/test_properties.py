"""Property tests: arbitrary Unicode never breaks translate, evaluate or the tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcli.metrics import score
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.translate import Translator

# Lines never contain a line break: that is what makes them lines.
LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=40)
WHITESPACE = st.text(st.sampled_from(" \t\u00a0\u3000\u2009"), max_size=6)
LINES = st.lists(st.one_of(LINE, WHITESPACE, st.just("")), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run_dir(
        trained_run, {"beam_size": 2, "max_length_ratio": 0.5}, torch.device("cpu")
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES)
def test_translate_writes_one_line_per_input_line(translator: Translator, lines: list[str]) -> None:
    outputs = list(translator.translate_stream(lines))
    assert len(outputs) == len(lines)
    assert all("\n" not in out for out in outputs)
    for line, out in zip(lines, outputs, strict=True):
        if line == "":
            assert out == ""


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(LINE, LINE), min_size=1, max_size=10))
def test_evaluate_scores_any_text(pairs: list[tuple[str, str]]) -> None:
    hypotheses, references = zip(*pairs, strict=True)
    scores = score(list(hypotheses), list(references))
    assert 0.0 <= scores.bleu <= 100.0 and 0.0 <= scores.chrf <= 100.0


@pytest.fixture(scope="module")
def byte_tokenizer() -> Tokenizer:
    text = [
        "The quick brown fox jumps over the lazy dog.",
        "Über den Wolken muss die Freiheit grenzenlos sein.",
    ]
    return Tokenizer(train_sentencepiece(text * 50, TokenizerSpec("unigram", 400, byte_fallback=True)))


@settings(max_examples=100, deadline=None)
@given(lines=LINES)
def test_tokenizer_round_trips_to_the_normalized_text(byte_tokenizer: Tokenizer, lines: list[str]) -> None:
    """With byte fallback no character is lost: decode(encode(x)) is x after normalization."""
    decoded = byte_tokenizer.decode(byte_tokenizer.encode(lines))
    assert decoded == [byte_tokenizer.normalize(line) for line in lines]
