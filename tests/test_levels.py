"""Vocabulary levels: word, char, unigram and BPE models, and the level chosen from the data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

import seqcli.cli.training
from seqcli.cli import app
from seqcli.config import Config
from seqcli.levels import choose_level, read_side
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece

ACTIONS = {"walk": "I_WALK", "jump": "I_JUMP", "run": "I_RUN", "look": "I_LOOK"}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}


def _commands(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """A small command language: 'jump left twice and walk' -> action tokens."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words, actions = [], []
        for part in range(rng.randint(1, 2)):
            verb, turn, times = rng.choice(list(ACTIONS)), rng.choice([None, *TURNS]), rng.choice([1, 2, 3])
            words += (["and"] if part else []) + [verb] + ([turn] if turn else [])
            words += {1: [], 2: ["twice"], 3: ["thrice"]}[times]
            step = [TURNS[turn], ACTIONS[verb]] if turn else [ACTIONS[verb]]
            actions += step * times
        pairs.append((" ".join(words), " ".join(actions)))
    return pairs


def _prose(count: int, alphabet: str, seed: int = 0) -> list[str]:
    """Natural-language-like lines: an open vocabulary where most words are rare."""
    rng = random.Random(seed)
    word = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9)))  # noqa: E731
    return [" ".join(word() for _ in range(rng.randint(3, 12))) for _ in range(count)]


def _write(tmp_path: Path, src: list[str], tgt: list[str]) -> tuple[Path, Path]:
    paths = (tmp_path / "train.src", tmp_path / "train.tgt")
    for path, lines in zip(paths, (src, tgt), strict=True):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths


def test_a_command_language_gets_whole_words_and_a_vocabulary_per_side(tmp_path: Path) -> None:
    pairs = _commands(2000)
    src, tgt = _write(tmp_path, [s for s, _ in pairs], [t for _, t in pairs])
    level = choose_level(read_side(src), read_side(tgt), len(pairs))
    assert level.type == "word" and not level.joint
    assert "closed vocabularies" in level.reason and "--tokenizer-type" in level.note()
    spec = TokenizerSpec(level.type, level.vocab_size)
    target = Tokenizer(train_sentencepiece([t for _, t in pairs], spec))
    assert target.encode_pieces(["I_TURN_RIGHT I_JUMP"]) == [["\u2581I_TURN_RIGHT", "\u2581I_JUMP"]]


def test_space_separated_symbols_get_one_piece_per_symbol(tmp_path: Path) -> None:
    rng = random.Random(1)
    letters = [" ".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 10))) for _ in range(1500)]
    phonemes = [" ".join(c.upper() + "H1" for c in line.split()) for line in letters]
    level = choose_level(*(read_side(p) for p in _write(tmp_path, letters, phonemes)), 1500)
    assert level.type == "word" and "distinct symbols" in level.reason
    tokenizer = Tokenizer(train_sentencepiece(phonemes, TokenizerSpec("word", level.vocab_size)))
    assert [len(p) for p in tokenizer.encode_pieces(phonemes[:20])] == [len(s.split()) for s in phonemes[:20]]


@pytest.mark.parametrize(
    ("target_alphabet", "joint"),
    [("abcdefghijklmnopqrstuvwxyz", True), ("あいうえおかきくけこさしすせそ", False)],
)
def test_natural_language_gets_subwords_joint_within_one_script(
    tmp_path: Path, target_alphabet: str, joint: bool
) -> None:
    paths = _write(
        tmp_path, _prose(3000, "abcdefghijklmnopqrstuvwxyz"), _prose(3000, target_alphabet, seed=1)
    )
    level = choose_level(read_side(paths[0]), read_side(paths[1]), 3000)
    assert (level.type, level.vocab_size, level.joint) == ("unigram", 2000, joint)
    assert "open source vocabulary" in level.reason


@pytest.mark.parametrize("kind", ["word", "char", "unigram", "bpe"])
def test_every_level_round_trips_its_training_text(kind: str) -> None:
    lines = _prose(400, "abcdefghij")
    size = 4000 if kind == "word" else 300  # room for every word, rare ones included
    tokenizer = Tokenizer(train_sentencepiece(lines, TokenizerSpec(kind, size)))
    assert tokenizer.decode(tokenizer.encode(lines)) == lines
    pieces = tokenizer.encode_pieces(lines[:1])[0]
    if kind == "word":
        assert len(pieces) == len(lines[0].split())
    if kind == "char":
        assert len(pieces) == len(lines[0]) + 1  # every character, spaces as word-start marks, one before


def test_unknown_words_become_unk_at_word_level() -> None:
    tokenizer = Tokenizer(train_sentencepiece(["walk left", "jump right"] * 50, TokenizerSpec("word", 100)))
    assert tokenizer.encode(["walk sideways"])[0][1] == 1  # <unk>
    assert tokenizer.decode(tokenizer.encode(["walk sideways"])) == ["walk \u2047 "]


def test_train_without_a_config_says_which_level_and_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[Config, str]] = []
    monkeypatch.setattr(
        seqcli.cli.training,
        "run_training",
        lambda config, out, resume, device, note="": seen.append((config, note)),
    )
    pairs = _commands(500)
    _write(tmp_path, [s for s, _ in pairs], [t for _, t in pairs])
    train = str(tmp_path / "train")
    args = ["train", "--train", train, "--valid", train, "--device", "cpu", "--out", "unused"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config, note = seen[-1]
    assert (config.tokenizer.type, config.tokenizer.joint) == ("word", False)
    assert not config.model.shared_embeddings  # two vocabularies: two embedding matrices
    assert "tokenizer word" in note and "--tokenizer-type word|char|unigram|bpe" in note
    result = CliRunner().invoke(app, [*args, "--tokenizer-type", "char", "--joint"])
    assert result.exit_code == 0, result.output
    config, note = seen[-1]
    assert (config.tokenizer.type, config.tokenizer.joint) == ("char", True) and "char as given" in note
