"""Generated tasks of two shapes that natural-language corpora lack, for `seqcli data generate`.

commands: a small closed command language to action tokens, outputs longer than inputs.

    hop left twice and wave   ->  I_TURN_LEFT I_HOP I_TURN_LEFT I_HOP I_WAVE
    crawl around right after step  ->  I_STEP I_TURN_RIGHT I_CRAWL (x4 in all)

  A phrase is an action (step, hop, crawl, wave), an optional direction (left, right; "about"
  turns twice before acting, "around" turns and acts four times) and an optional count
  (twice, thrice); two phrases join with "and" (in order) or "after" (the second first).
  Every command is enumerated (14,196) and split two ways: "random" (80/10/10), and "length",
  where every test output is longer than any training or validation output.

symbols: letters to sounds, one symbol per token ("c h e e s e" -> "CH IY Z"). Pseudo-words
  are drawn from syllables and spelled out by fixed context rules (a "c" before e, i or y
  sounds S; a final e is silent and lengthens the vowel before it; "th", "ch", "sh", "ee",
  "oo", "ck" are one sound each), so the mapping is learnable but not letter by letter.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from seqcli.textio import atomic_open

ACTIONS = {"step": "I_STEP", "hop": "I_HOP", "crawl": "I_CRAWL", "wave": "I_WAVE"}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
COUNTS = {"": 1, "twice": 2, "thrice": 3}
LENGTH_SPLIT_LONGEST_TRAIN = 22  # length split: outputs up to this many tokens train, longer test


def _phrase_actions(action: str, manner: str, turn: str) -> list[str]:
    act = [ACTIONS[action]]
    if not turn:
        return act
    if manner == "around":
        return [TURNS[turn], *act] * 4
    if manner == "about":
        return [TURNS[turn], TURNS[turn], *act]
    return [TURNS[turn], *act]


def phrases() -> list[tuple[str, list[str]]]:
    """Every phrase of the command language with its actions."""
    found = []
    for action in ACTIONS:
        for manner, turn in [("", ""), *((m, t) for m in ("", "about", "around") for t in TURNS)]:
            for count, times in COUNTS.items():
                words = [action, manner, turn, count]
                found.append((" ".join(w for w in words if w), _phrase_actions(action, manner, turn) * times))
    return found


def commands() -> list[tuple[str, str]]:
    """Every command (one phrase, or two joined by "and" or "after") with its action tokens."""
    single = phrases()
    pairs = [(words, " ".join(actions)) for words, actions in single]
    for first, first_actions in single:
        for second, second_actions in single:
            pairs.append((f"{first} and {second}", " ".join(first_actions + second_actions)))
            pairs.append((f"{first} after {second}", " ".join(second_actions + first_actions)))
    return pairs


def split_commands(split: str, seed: int) -> dict[str, list[tuple[str, str]]]:
    """train/valid/test of the command task: "random" 80/10/10, or "length" (test outputs longer
    than LENGTH_SPLIT_LONGEST_TRAIN tokens; valid is a tenth of the short ones)."""
    pairs = commands()
    random.Random(seed).shuffle(pairs)
    if split == "random":
        tenth = len(pairs) // 10
        return {"train": pairs[2 * tenth :], "valid": pairs[:tenth], "test": pairs[tenth : 2 * tenth]}
    if split == "length":
        short = [p for p in pairs if len(p[1].split()) <= LENGTH_SPLIT_LONGEST_TRAIN]
        long = [p for p in pairs if len(p[1].split()) > LENGTH_SPLIT_LONGEST_TRAIN]
        tenth = len(short) // 10
        return {"train": short[tenth:], "valid": short[:tenth], "test": long}
    raise ValueError(f"split {split!r}: expected random or length")


# Spelling rules of the symbol task: (letters, sound), longest match first; vowels followed by
# one consonant and a final "e" take their long sound.
DIGRAPHS = {"th": "TH", "ch": "CH", "sh": "SH", "ee": "IY", "oo": "UW", "ck": "K", "ph": "F", "ng": "NG"}
SHORT_VOWELS = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH", "y": "IH"}
LONG_VOWELS = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW", "y": "AY"}
CONSONANTS = {c: c.upper() for c in "bdfghjklmnpqrstvwz"} | {"x": "K S", "c": "K"}
ONSETS = [*"bcdfghjklmnprstvwz", "th", "ch", "sh", "ph", "bl", "br", "cl", "cr", "dr", "fl", "gr", "pl",
          "pr", "st", "str", "tr"]  # fmt: skip
NUCLEI = ["a", "e", "i", "o", "u", "y", "ee", "oo"]
CODAS = ["", "", "b", "ck", "d", "g", "l", "m", "n", "ng", "p", "s", "t", "x", "sh", "th", "st", "nd"]


def pronounce(word: str) -> list[str]:
    """The sounds of a word by the rules above."""
    sounds: list[str] = []
    i = 0
    silent_e = len(word) >= 3 and word.endswith("e") and word[-2] not in "aeiouy" and word[-3] in "aeiouy"
    while i < len(word):
        if word[i : i + 2] in DIGRAPHS:
            sounds.append(DIGRAPHS[word[i : i + 2]])
            i += 2
            continue
        letter = word[i]
        if letter == "e" and silent_e and i == len(word) - 1:
            break
        if letter in SHORT_VOWELS:
            long = silent_e and i == len(word) - 3
            sounds.append((LONG_VOWELS if long else SHORT_VOWELS)[letter])
        elif letter == "c" and word[i + 1 : i + 2] in ("e", "i", "y"):
            sounds.append("S")
        else:
            sounds.extend(CONSONANTS[letter].split())
        i += 1
    return sounds


def pseudo_words(count: int, seed: int) -> list[str]:
    """count distinct words of one to three syllables, some with a silent final e."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.choice([1, 2, 2, 3])
        word = "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(syllables))
        if rng.random() < 0.2 and word[-1] not in "aeiouy" and word[-2] in "aeiouy":
            word += "e"
        words.add(word)
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


def split_symbols(count: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """train/valid/test (90/5/5) of distinct pseudo-words, letters -> sounds."""
    pairs = [(" ".join(word), " ".join(pronounce(word))) for word in pseudo_words(count, seed)]
    twentieth = len(pairs) // 20
    return {
        "train": pairs[2 * twentieth :],
        "valid": pairs[:twentieth],
        "test": pairs[twentieth : 2 * twentieth],
    }


def write_splits(out: Path, splits: dict[str, list[tuple[str, str]]]) -> list[Path]:
    """PREFIX.src and PREFIX.tgt for each split, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pairs in splits.items():
        for side, suffix in ((0, "src"), (1, "tgt")):
            path = out / f"{name}.{suffix}"
            _write_lines(path, (pair[side] for pair in pairs))
            written.append(path)
    return written


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_open(path, "w") as handle:
        handle.writelines(line + "\n" for line in lines)
