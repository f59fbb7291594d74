"""Experiment 7 (skip-thought retrieval over seeds): a smoke run on generated books, and its section."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments` lives at the repository root

from experiments.claims.skipthought import CANDIDATES, chance, model_settings, run, section  # noqa: E402
from experiments.skipthought_books import TEST_BOOKS, VALID_BOOKS  # noqa: E402

NAMES = ["Bako", "Dami", "Fenu", "Gori", "Kela", "Lumo", "Mira", "Nesi", "Pado", "Ruta"]
VERBS = ["sees", "likes", "finds", "meets", "calls", "helps"]


def write_book(path: Path, rng: random.Random, n_sentences: int) -> None:
    """A raw book: a title line, then paragraphs of three sentences about a cast of two."""
    paragraphs = ["A GENERATED BOOK"]
    for _ in range(n_sentences // 3):
        x, y = rng.sample(NAMES, 2)
        paragraphs.append(
            " ".join(f"{x} {rng.choice(VERBS)} {y} at the {rng.choice(VERBS)}." for _ in range(3))
        )
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


@pytest.fixture
def books(tmp_path: Path) -> Path:
    """Two training books and the held-out books by their real names, 120 sentences each."""
    out = tmp_path / "books"
    out.mkdir()
    rng = random.Random(0)
    for name in ("first", "second", *VALID_BOOKS, *TEST_BOOKS):
        write_book(out / f"{name}.txt", rng, 120)
    (out / "README.md").write_text("not a book\n", encoding="utf-8")
    return out


def test_model_settings_are_the_long_runs_flags() -> None:
    settings = model_settings()
    assert settings["model"] == {
        "cell": "gru",
        "bidirectional": False,
        "embedding_size": 128,
        "hidden_size": 256,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.0,
    }
    assert settings["train"] == {"batch_tokens": 2400, "label_smoothing": 0.0, "learning_rate": 0.002}
    assert settings["tokenizer"] == {"vocab_size": 2000}
    assert settings["data"] == {"max_tokens_per_sentence": 40}


def test_chance_is_the_uniform_rank() -> None:
    assert chance(2) == {"recall_at_1": 0.5, "mrr": 0.75, "mean_rank": 1.5}


def test_tiny_run_and_section(tmp_path: Path, books: Path) -> None:
    results = run(tmp_path / "work", [1], 1, tiny=True, books=books)
    assert (tmp_path / "work" / "skipthought" / "results.json").exists()
    setting = results["setting"]
    assert setting["train"]["books"] == ["first", "second"]
    assert setting["test"]["books"] == list(TEST_BOOKS)
    assert setting["test"]["sentences"] == 2 * setting["sentences_per_book"]
    (record,) = results["runs"]
    assert record["updates"] == setting["steps"] > 0
    assert record["seconds"] > 0
    for vectors in ("skip-thought", "bag-of-words"):
        for n in CANDIDATES:
            scores = record["retrieval"][vectors][str(n)]
            assert scores["queries"] == 2 * (setting["sentences_per_book"] - 1)
            assert 0 <= scores["recall_at_1"] <= 1
            assert 1 <= scores["mean_rank"] <= n
            assert 1 / n <= scores["mrr"] <= 1

    # A second call reuses the trained run and the cached ranks.
    again = run(tmp_path / "work", [1], 1, tiny=True, books=books)
    assert again["runs"][0]["retrieval"] == record["retrieval"]

    figures = tmp_path / "figures"
    lines = section(results, figures)
    assert (figures / "skipthought-seeds.png").stat().st_size > 0
    text = "\n".join(lines)
    assert lines[0] == "## 7. Skip-thought vectors: next-sentence retrieval over seeds"
    assert f"{setting['steps']:,} updates" in text
    assert "[skipthought.md](skipthought.md)" in text
    assert "](figures/skipthought-seeds.png)" in text
    assert "READING: skipthought" in lines
    rows = [line for line in lines if line.startswith("| ")][1:]
    assert [row.split(" | ")[:2] for row in rows] == [
        [f"| {vectors}", str(n)]
        for n in CANDIDATES
        for vectors in ("skip-thought", "bag of words (mean embedding)", "chance")
    ]
    recall = record["retrieval"]["skip-thought"]["10"]["recall_at_1"]
    assert f"| skip-thought | 10 | {recall:.3f} ± 0.000 |" in text


def test_the_books_page_is_written_from_its_result_file_and_keeps_its_reading(tmp_path: Path) -> None:
    from benchmarks.provenance import provenance, write_result
    from experiments import skipthought_books

    row = {"vectors": "skip-thought (seqcli)", "candidates": 10, "queries": 1234, "mean_rank": 4.0,
           "recall_at_1": 0.242, "mrr": 0.444, "chance_mean_rank": 5.5,
           "chance_recall_at_1": 0.1}  # fmt: skip
    figures = {"minutes": 2.0, "train_books": 3, "train_sentences": 900, "valid_books": list(VALID_BOOKS),
               "test_books": list(TEST_BOOKS), "test_sentences": 1236, "model_args": ["--cell", "gru"],
               "updates": 40, "train_minutes": 2.1, "best_valid_loss": 4.5, "rows": [row]}  # fmt: skip
    results, page = tmp_path / "books.json", tmp_path / "books.md"
    write_result(results, figures, provenance())
    older = "# an older page\n\n| old | table |\n\n## Reading\n\nWritten by hand.\n"
    page.write_text(older, encoding="utf-8")
    argv = ["skipthought_books", "--from-results", "--results", str(results), "--report", str(page)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        skipthought_books.main()
    text = page.read_text(encoding="utf-8")
    assert "| skip-thought (seqcli) | 10 | 1,234 | 4.00 | 0.242 | 0.444 | 5.5 | 0.100 |" in text
    assert "| old | table |" not in text and text.endswith("## Reading\n\nWritten by hand.\n")
    assert f"figures, hardware and command: `{results}`" in text
    assert "python -m experiments.skipthought_books --minutes 2" in text
