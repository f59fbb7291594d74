"""`seqcli data generate`: the command and symbol tasks, and the level training chooses for them."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run_cli

from seqcli.generated import commands, pronounce, split_commands
from seqcli.levels import choose_level, read_side


def test_the_command_language_is_enumerated_and_its_length_split_holds_out_longer_outputs() -> None:
    every = commands()
    assert len(every) == len({src for src, _ in every}) == 14196
    assert ("hop left twice and wave", "I_TURN_LEFT I_HOP I_TURN_LEFT I_HOP I_WAVE") in every
    assert ("wave after crawl about right", "I_TURN_RIGHT I_TURN_RIGHT I_CRAWL I_WAVE") in every
    splits = split_commands("length", seed=3)
    longest_seen = max(len(tgt.split()) for name in ("train", "valid") for _, tgt in splits[name])
    assert min(len(tgt.split()) for _, tgt in splits["test"]) > longest_seen
    assert sum(len(pairs) for pairs in splits.values()) == len(every)


def test_spelling_rules_are_contextual() -> None:
    assert pronounce("cake") == ["K", "EY", "K"]  # silent e, long vowel
    assert pronounce("cider") == ["S", "IH", "D", "EH", "R"]  # c before i
    assert pronounce("thick") == ["TH", "IH", "K"]


def test_generate_writes_splits_that_train_reads_as_word_level(tmp_path: Path) -> None:
    for task in ("commands", "symbols"):
        run_cli("data", "generate", task, "--out", str(tmp_path / task), "--words", "3000")
        level = choose_level(
            read_side(tmp_path / task / "train.src"), read_side(tmp_path / task / "train.tgt"), 1
        )
        assert level.type == "word" and not level.joint, level
    result = run_cli("data", "generate", "poems", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "unknown task (known: commands, symbols)" in result.stderr
