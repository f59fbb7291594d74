"""The vocabulary level of a corpus: words, characters or subwords, chosen from the data.

`seqcli train` uses this when neither a config file nor a flag names `tokenizer.type`. It
reads each side of the training corpus once (the first SAMPLE_LINES lines) and counts its
whitespace tokens:

- Both sides have a small closed vocabulary (at most CLOSED_TYPES distinct tokens, and almost
  none seen only once): word level. Every token is one piece, nothing is split; this covers
  command languages ("jump twice and walk left" -> "I_JUMP I_JUMP I_WALK") and space-separated
  symbols (letters to phonemes: "w o r d" -> "W ER1 D"), one piece per symbol.
- Otherwise, natural language: unigram subwords, with a vocabulary that grows with the corpus.

One vocabulary serves both sides (joint) when they share it: at word level when most target
token types also appear on the source side, at subword level when the target's characters are
the source's (one script). Joint subwords let the source and target embeddings be one matrix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from seqcli.textio import open_input

SAMPLE_LINES = 200_000  # enough to tell the kinds of corpora apart; reading stays a few seconds
CLOSED_TYPES = 1000  # more distinct tokens than this is an open (natural-language) vocabulary
RARE_SHARE = 0.05  # a closed vocabulary has at most this share of its types seen once
WORD_OVERLAP = 0.5  # word level: joint when at least this share of target types is on the source side
SCRIPT_OVERLAP = 0.9  # subwords: joint when this share of target characters occurs on the source side


@dataclass(frozen=True)
class Side:
    """Counts over one side of a corpus."""

    lines: int
    tokens: Counter[str]
    characters: Counter[str]

    @property
    def types(self) -> int:
        return len(self.tokens)

    @property
    def seen_once(self) -> int:
        return sum(1 for count in self.tokens.values() if count == 1)

    @property
    def closed(self) -> bool:
        """A small vocabulary whose every token recurs: word level loses nothing to <unk>."""
        return 0 < self.types <= CLOSED_TYPES and self.seen_once <= RARE_SHARE * self.types

    @property
    def symbols(self) -> bool:
        """Space-separated symbols: tokens of one or two characters."""
        return all(len(token) <= 2 for token in self.tokens)

    def describe(self) -> str:
        kind = "symbols" if self.symbols else "tokens"
        return f"{self.types:,} distinct {kind}, {self.seen_once:,} seen once"


def read_side(path: Path, limit: int = SAMPLE_LINES) -> Side:
    tokens: Counter[str] = Counter()
    characters: Counter[str] = Counter()
    lines = 0
    with open_input(path) as handle:
        for line in islice(handle, limit):
            lines += 1
            tokens.update(line.split())
            characters.update(line.replace(" ", "").strip())
    return Side(lines, tokens, characters)


def count_lines(path: Path) -> int:
    """Lines of a file (0 when it cannot be read: training then says why)."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def subword_vocabulary(pairs: int) -> int:
    """Subword pieces for a corpus of this many training pairs: small corpora get fewer pieces,
    so each piece is seen often enough to learn (the Multi30k recipes: 4,000-8,000 at 29,000)."""
    if pairs < 10_000:
        return 2000
    if pairs < 60_000:
        return 4000
    return 8000


@dataclass(frozen=True)
class Level:
    """A tokenizer choice: SentencePiece type, vocabulary size and joint or not, and why."""

    type: str
    vocab_size: int
    joint: bool
    reason: str

    def note(self) -> str:
        sides = "one joint vocabulary" if self.joint else "a vocabulary per side"
        return (
            f"tokenizer {self.type}, {self.vocab_size:,} pieces at most, {sides} ({self.reason}); "
            "change it with --tokenizer-type word|char|unigram|bpe, --vocab-size, --joint/--separate"
        )


def choose_level(src: Side, tgt: Side, pairs: int) -> Level:
    """The level, size and sharing for a corpus (module docstring)."""
    if src.closed and tgt.closed:
        shared = len(set(tgt.tokens) & set(src.tokens)) / max(tgt.types, 1)
        joint = shared >= WORD_OVERLAP
        reason = (
            f"closed vocabularies: source {src.describe()}, target {tgt.describe()}; "
            f"{shared:.0%} of target types on the source side"
        )
        return Level("word", vocabulary_size("word", joint, src, tgt, pairs), joint, reason)
    shared = script_overlap(src, tgt)
    joint = shared >= SCRIPT_OVERLAP
    open_side, side = ("source", src) if not src.closed else ("target", tgt)
    reason = (
        f"open {open_side} vocabulary ({side.describe()}), {pairs:,} pairs; "
        f"{shared:.0%} of target characters occur on the source side"
    )
    return Level("unigram", vocabulary_size("unigram", joint, src, tgt, pairs), joint, reason)


def script_overlap(src: Side, tgt: Side) -> float:
    """The share of target characters (counted with repeats) that occur on the source side."""
    total = sum(tgt.characters.values())
    return sum(n for c, n in tgt.characters.items() if c in src.characters) / max(total, 1)


def vocabulary_size(type: str, joint: bool, src: Side, tgt: Side, pairs: int) -> int:
    """An upper bound on the pieces (SentencePiece keeps fewer when the data has fewer):
    at word level every token of a closed vocabulary (else those seen twice), at character
    level every character seen twice, subwords from the corpus size."""
    if type in ("unigram", "bpe"):
        return subword_vocabulary(pairs)
    if type == "char":
        counts = [src.characters | tgt.characters] if joint else [src.characters, tgt.characters]
    else:
        counts = [src.tokens | tgt.tokens] if joint else [src.tokens, tgt.tokens]
    every = type == "word" and src.closed and tgt.closed
    kept = max(sum(1 for n in c.values() if every or n > 1) for c in counts)
    return max(kept, 4) + 4  # + the special pieces


def resolve(
    type: str, vocab_size: int, joint: bool | None, paths: tuple[Path, Path], pairs: int
) -> Level | None:
    """Fill what is left to the data: type "auto", vocab_size 0, joint None. None when all
    three are given (nothing read)."""
    if type != "auto" and vocab_size and joint is not None:
        return None
    src, tgt = read_side(paths[0]), read_side(paths[1])
    if type == "auto":
        level = choose_level(src, tgt, pairs)
        joint = level.joint if joint is None else joint
        type, reason = level.type, level.reason
    else:
        joint = True if joint is None else joint
        reason = f"{type} as given, {pairs:,} pairs"
    size = vocab_size or vocabulary_size(type, joint, src, tgt, pairs)
    return Level(type, size, joint, reason)
