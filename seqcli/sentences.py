"""Raw book text -> sentences, and sentence files -> documents (a blank line ends a document).

The splitter is a plain rule set, good enough for 19th-century novels: paragraphs are
separated by blank lines, a sentence ends at `.`, `!` or `?` (and any closing quotes or
brackets) followed by space and an upper-case letter or an opening quote, except after a
known abbreviation (Mr., Dr., ...) or a single initial (H. G. Wells).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "mme",
        "mlle",
        "messrs",
        "rev",
        "prof",
        "capt",
        "col",
        "gen",
        "lt",
        "sgt",
        "hon",
        "jr",
        "sr",
        "vs",
        "etc",
        "esq",
        "no",
        "vol",
        "ch",
    ]
)

# An end mark with its closing quotes, the space after it, and a look at what follows.
_BOUNDARY = re.compile(r"""([.!?]+["'\u201d\u2019)\]]*)\s+(?=["'\u201c\u2018(\[]?[A-Z])""")
_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)


def strip_gutenberg(lines: list[str]) -> list[str]:
    """The lines between Project Gutenberg's START and END markers (all lines if absent)."""
    start = next((i + 1 for i, line in enumerate(lines) if _GUTENBERG_START.match(line)), 0)
    end = next((i for i, line in enumerate(lines) if _GUTENBERG_END.match(line)), len(lines))
    return lines[start:end] if start < end else lines


def paragraphs(lines: Iterable[str]) -> list[str]:
    """Blank-line separated blocks, each joined into one line with single spaces."""
    blocks: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        text = line.strip().lstrip("\ufeff")
        if text:
            current.append(text)
        elif current:
            blocks.append(" ".join(" ".join(current).split()))
            current = []
    return blocks


def _is_abbreviation(text_before: str) -> bool:
    """Whether the word that a `.` ends is an abbreviation or a single initial."""
    word = text_before.rsplit(maxsplit=1)[-1] if text_before.strip() else ""
    word = word.lstrip("\"'\u201c\u2018([").rstrip(".")
    return word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper())


def split_sentences(paragraph: str) -> list[str]:
    """One paragraph -> its sentences, in order."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.end(1)
        if match.group(1) == "." and _is_abbreviation(paragraph[start : match.start(1)]):
            continue
        sentences.append(paragraph[start:end].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def _is_heading(paragraph: str) -> bool:
    """Chapter titles and other all-capitals lines, which are not running text."""
    letters = [c for c in paragraph if c.isalpha()]
    return not letters or all(c.isupper() for c in letters)


def book_sentences(lines: list[str]) -> list[str]:
    """A raw book's sentences in reading order: license text and headings left out."""
    return [
        sentence
        for paragraph in paragraphs(strip_gutenberg(lines))
        if not _is_heading(paragraph)
        for sentence in split_sentences(paragraph)
    ]


def read_documents(lines: Iterable[str]) -> list[list[str]]:
    """A sentence file (one per line, a blank line ends a document) -> its documents."""
    documents: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            documents[-1].append(line.strip())
        elif documents[-1]:
            documents.append([])
    return [d for d in documents if d]
