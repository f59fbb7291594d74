"""The generated tasks of the synthetic claims experiments, their scores, and a tiny end-to-end run."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ is not installed

from experiments.claims import synthetic  # noqa: E402


def test_reversal_pairs_are_reversed() -> None:
    rng = random.Random(0)
    for length in (1, 5, 60):
        src, tgt = synthetic.reversal_pair(rng, length)
        assert len(src.split()) == length
        assert tgt.split() == src.split()[::-1]
        assert set(src.split()) <= set(synthetic.SYMBOLS)


def test_every_stem_takes_the_form_of_the_next_marker() -> None:
    rng = random.Random(0)
    for _ in range(200):
        length = rng.randint(4, 12)
        src, tgt = synthetic.form_pair(rng, length)
        words, targets = src.split(), tgt.split()
        assert words[-1] in synthetic.FORMS  # every stem has a marker after it
        assert not set(targets) & set(synthetic.FORMS)  # markers are not emitted
        stems = [w for w in words if w not in synthetic.FORMS]
        assert len(stems) == len(targets) == length
        target = iter(targets)
        for position, word in enumerate(words):
            if word in synthetic.FORMS:
                continue
            marker = next(w for w in words[position + 1 :] if w in synthetic.FORMS)
            assert next(target) == word + synthetic.FORMS[marker]


def test_forms_change_within_a_sentence() -> None:
    """Markers inside the source, not only at its end: one bit carried from the start is not enough."""
    rng = random.Random(1)
    targets = [synthetic.form_pair(rng, 12)[1].split() for _ in range(100)]
    assert any(len({word[-1] for word in words}) == 2 for words in targets)


def test_scores_by_bucket() -> None:
    refs = ["a b", "a b c d", "c1 d2 e2"]
    hyps = ["a b", "a b d c", "c1 d1 e2 f2"]
    buckets = [(1, 2), (3, 4)]
    assert synthetic.by_bucket(hyps, refs, buckets, synthetic.exact_match) == [100.0, 0.0]
    # bucket 3-4: 2 of 4 symbols, then 2 of 4 (the output is one longer): 4 / 8
    assert synthetic.by_bucket(hyps, refs, buckets, synthetic.symbol_hits) == [100.0, 50.0]
    assert synthetic.by_bucket(hyps[2:], refs[2:], [(3, 3)], synthetic.form_hits) == [50.0]


@pytest.mark.parametrize(
    ("run", "section", "figure", "configs"),
    [
        (synthetic.run_length, synthetic.section_length, "length-sweep.png", synthetic.ATTENTIONS),
        (
            synthetic.run_directions,
            synthetic.section_directions,
            "directions-synthetic.png",
            synthetic.ENCODERS,
        ),
    ],
)
def test_tiny_run_writes_results_figure_and_table(run, section, figure, configs, tmp_path: Path) -> None:
    results = run(tmp_path, [1], 1, tiny=True)
    assert [r["config"] for r in results["runs"]] == list(configs)
    assert all(len(r["exact"]) == len(results["buckets"]) for r in results["runs"])
    assert all(0.0 <= v <= 100.0 for r in results["runs"] for v in r["exact"])
    name = "length" if run is synthetic.run_length else "directions"
    assert (tmp_path / name / "results.json").exists()

    lines = section(results, tmp_path / "figures")
    assert (tmp_path / "figures" / figure).stat().st_size > 1000
    assert lines[0].startswith("### ")
    assert f"](figures/{figure})" in "\n".join(lines)
    assert f"READING: {name}" in lines
    rows = [line for line in lines if line.startswith("| ")]
    for config in configs:
        assert any(row.startswith(f"| {config} | exact match |") for row in rows)
    assert "± " in rows[1]
