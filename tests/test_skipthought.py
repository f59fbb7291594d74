"""Skip-thought vectors: sentence splitting, retrieval ranks, training, and `seqcli embed`."""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import ENV, run_cli
from safetensors.torch import load_file
from test_resume import assert_same_weights, start_and_stop_after

from seqcli import checkpoint
from seqcli.config import config_from_dict
from seqcli.errors import RunDirError
from seqcli.retrieval import next_sentence_ranks, summarize
from seqcli.sentences import book_sentences, read_documents, split_sentences
from seqcli.skipthought import SentenceEncoder, SkipThoughtTask
from seqcli.tasks import new_trainer
from seqcli.translate import Translator

NOUNS = [f"{c}{v}" for c in "bdfgklmnprst" for v in "aeiou"][:40]
VERBS = ["sees", "likes", "finds", "meets", "calls", "helps"]


def document(rng: random.Random, n: int) -> list[str]:
    """Scenes of six sentences about a cast of three: neighbours share their context."""
    sentences: list[str] = []
    while len(sentences) < n:
        cast = rng.sample(NOUNS, 3)
        for _ in range(6):
            x, y = rng.sample(cast, 2)
            sentences.append(f"the {x} {rng.choice(VERBS)} the {y} .")
    return sentences[:n]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine lose a lot to them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_documents(path: Path, documents: list[list[str]]) -> None:
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    """train.txt and valid.txt of generated documents, and held-out test documents."""
    out = tmp_path_factory.mktemp("story")
    rng = random.Random(0)
    write_documents(out / "train.txt", [document(rng, 40) for _ in range(60)])
    write_documents(out / "valid.txt", [document(rng, 30) for _ in range(2)])
    return out, [document(rng, 30) for _ in range(6)]


def test_sentence_splitter_handles_abbreviations_initials_and_quotes() -> None:
    text = 'Mr. Bennet said "Yes." Then H. G. Wells came. Did he? \u201cNo!\u201d she cried. It ended'
    assert split_sentences(text) == [
        'Mr. Bennet said "Yes."',
        "Then H. G. Wells came.",
        "Did he?",
        "\u201cNo!\u201d she cried.",
        "It ended",
    ]


def test_book_sentences_drop_license_and_headings_and_join_wrapped_lines() -> None:
    book = [
        "The Project Gutenberg eBook of Something",
        "*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***",
        "CHAPTER I.",
        "",
        "It was a dark",
        "night. The end came.",
        "",
        "*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***",
        "License text. More of it.",
    ]
    assert book_sentences(book) == ["It was a dark night.", "The end came."]


def test_blank_lines_separate_documents() -> None:
    assert read_documents(["a", "b", "", "", "c", ""]) == [["a", "b"], ["c"]]


def test_ranks_can_be_checked_by_hand() -> None:
    # Document of 6 sentences where each successor is the exact copy of its sentence's vector...
    vectors = np.repeat(np.eye(3), 2, axis=0)[[0, 1, 1, 2, 2, 0]]  # rows: e0 e1 e1 e2 e2 e0
    ranks = next_sentence_ranks(vectors, [6], n_candidates=3, seed=0)
    assert len(ranks) == 5  # every sentence but the last has a successor
    # ...e0 -> e1 (orthogonal; ties with orthogonal negatives count against it), e1 -> e1 (rank 1).
    assert ranks[1] == 1 and ranks[3] == 1
    assert summarize(ranks, 3).chance_mean_rank == 2.0
    # Documents too short for the candidates are skipped.
    assert len(next_sentence_ranks(vectors, [3, 3], n_candidates=3)) == 0


def test_skip_thought_retrieval_beats_chance(story: tuple[Path, list[list[str]]], tmp_path: Path) -> None:
    corpus, test_documents = story
    config = config_from_dict(
        {
            "data": {
                "task": "skip-thought",
                "train": str(corpus / "train.txt"),
                "valid": str(corpus / "valid.txt"),
            },
            "tokenizer": {"vocab_size": 80},
            "model": {
                "cell": "gru",
                "bidirectional": False,
                "embedding_size": 16,
                "hidden_size": 32,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "dropout": 0.0,
            },
            "train": {"max_steps": 150, "eval_every": 150, "batch_tokens": 600, "learning_rate": 0.01},
        }
    )
    trainer = new_trainer(config, tmp_path / "run", "cpu")
    assert isinstance(trainer.task, SkipThoughtTask)
    untrained_loss = trainer.task.validation_loss()
    summary = trainer.run(_Silent())
    assert summary.best_measure == "valid_loss" and summary.best_value < untrained_loss / 2
    encoder = SentenceEncoder.from_run_dir(tmp_path / "run", torch.device("cpu"))
    sentences = [s for d in test_documents for s in d]
    ranks = next_sentence_ranks(encoder.embed(sentences), [len(d) for d in test_documents], 5)
    result = summarize(ranks, 5)
    assert result.queries == 6 * 29
    assert result.recall_at_1 > 1.5 * result.chance_recall_at_1  # measured: 0.37 against 0.20
    assert result.mean_rank < result.chance_mean_rank - 0.3


class _Silent:
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: object) -> None: ...
    def on_end(self, summary: object) -> None: ...
    def on_note(self, text: str) -> None: ...


def test_cli_trains_and_embeds_one_vector_per_line(
    story: tuple[Path, list[list[str]]], tmp_path: Path
) -> None:
    corpus, _ = story
    run_dir = tmp_path / "st"
    run_cli(
        "train", "--task", "skip-thought",
        "--train", str(corpus / "train.txt"), "--valid", str(corpus / "valid.txt"),
        "--vocab-size", "80", "--cell", "gru", "--unidirectional", "--embedding-size", "16",
        "--hidden-size", "24", "--encoder-layers", "1", "--decoder-layers", "1",
        "--max-steps", "10", "--eval-every", "10", "--out", str(run_dir),
    )  # fmt: skip
    lines = "the ba sees the be .\n\nthe bi likes the bo .\n"
    result = run_cli("embed", str(run_dir), input_text=lines)
    rows = result.stdout.splitlines()
    assert len(rows) == 3 and all(len(row.split()) == 24 for row in rows)
    assert set(rows[1].split()) == {"0"}  # an empty line gets the zero vector
    run_cli("embed", str(run_dir), "--npy", str(tmp_path / "v.npy"), input_text=lines)
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 24) and vectors.dtype == np.float32
    assert np.allclose(vectors, np.array([[float(x) for x in row.split()] for row in rows]), atol=1e-5)
    with pytest.raises(RunDirError, match="seqcli embed"):  # a translation model it is not
        Translator.from_run_dir(run_dir, {}, torch.device("cpu"))


def skip_thought_args(corpus: Path) -> list[str]:
    # Dropout makes the run depend on the random-number state as well as the weights.
    return [
        "train", "--task", "skip-thought",
        "--train", str(corpus / "train.txt"), "--valid", str(corpus / "valid.txt"),
        "--vocab-size", "80", "--cell", "gru", "--embedding-size", "16", "--hidden-size", "32",
        "--encoder-layers", "1", "--decoder-layers", "1", "--dropout", "0.2", "--batch-tokens", "300",
        "--max-steps", "20", "--eval-every", "10", "--seed", "4",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted_skip_thought(
    story: tuple[Path, list[list[str]]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A whole skip-thought run, at this worker's share of the cores."""
    whole = tmp_path_factory.mktemp("skip-thought") / "whole"
    run_cli(*skip_thought_args(story[0]), "--out", str(whole), env=ENV)
    return whole


def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    story: tuple[Path, list[list[str]]], tmp_path: Path, uninterrupted_skip_thought: Path
) -> None:
    """SIGKILL leaves the last evaluation's state; the resumed run ends as the whole one did."""
    corpus, _ = story
    whole = uninterrupted_skip_thought
    split = tmp_path / "split"
    args = [*skip_thought_args(corpus), "--out", str(split)]
    assert start_and_stop_after(args, split, 10, signal.SIGKILL, ENV) == -signal.SIGKILL
    assert 10 <= checkpoint.load_training_state(split).loop["step"] <= 20
    run_cli("train", "--resume", str(split), env=ENV)
    assert_same_weights(load_file(split / checkpoint.LAST), load_file(whole / checkpoint.LAST))
    assert [r["step"] for r in checkpoint.read_log(split)] == [10, 20]
    assert checkpoint.read_log(split)[-1]["valid_loss"] == checkpoint.read_log(whole)[-1]["valid_loss"]
