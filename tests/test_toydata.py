"""Tests for the built-in dates -> ISO 8601 toy task."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from seqcli.errors import ConfigError
from seqcli.toydata import (
    FORMATS,
    ToySplitSizes,
    format_date,
    generate_dates,
    write_toy_corpus,
)

# The test's own reading of month and weekday names, written independently of the module
# so that a wrong table there (a swapped month, an off-by-one weekday) fails here.
MONTH_NUMBERS = {
    name: number
    for number, names in enumerate(
        [
            "january jan januar jan.",
            "february feb februar feb.",
            "march mar märz",
            "april apr apr.",
            "may mai",
            "june jun juni",
            "july jul juli",
            "august aug aug.",
            "september sep sept.",
            "october oct oktober okt.",
            "november nov nov.",
            "december dec dezember dez.",
        ],
        start=1,
    )
    for name in names.split()
}
WEEKDAY_NUMBERS = {
    name: number
    for number, names in enumerate(
        [
            "monday mon montag mo",
            "tuesday tue dienstag di",
            "wednesday wed mittwoch mi",
            "thursday thu donnerstag do",
            "friday fri freitag fr",
            "saturday sat samstag sa",
            "sunday sun sonntag so",
        ]
    )
    for name in names.split()
}
GERMAN_ONLY_MONTHS = {"Januar", "Februar", "März", "Mai", "Juni", "Juli", "Oktober", "Dezember"}
ENGLISH_ONLY_MONTHS = {"January", "February", "March", "May", "June", "July", "October"}


def parse_source(src: str) -> date:
    """Read a source by its convention; assert that any weekday in it is the right one."""
    if match := re.fullmatch(r"(\d{4})[-/](\d{2})[-/](\d{2})", src):
        year, month, day = map(int, match.groups())
        return date(year, month, day)
    if match := re.search(r"(\d{1,2})/(\d{1,2})/(\d{4})$", src):
        month, day, year = map(int, match.groups())
        return date(year, month, day)
    if match := re.search(r"(\d{1,2})\.(\d{1,2})\.(\d{4})$", src):
        day, month, year = map(int, match.groups())
        return date(year, month, day)
    words = [word.strip(",").lower() for word in src.split()]
    (month,) = [MONTH_NUMBERS[w] for w in words if w in MONTH_NUMBERS]
    (day,) = [int(m[1]) for w in words if (m := re.fullmatch(r"(\d{1,2})(st|nd|rd|th|\.)?", w))]
    (year,) = [int(w) for w in words if re.fullmatch(r"\d{4}", w)]
    parsed = date(year, month, day)
    weekdays = [WEEKDAY_NUMBERS[w] for w in words if w in WEEKDAY_NUMBERS]
    assert weekdays in ([], [parsed.weekday()]), src
    return parsed


def source_shape(src: str) -> str:
    """The source with names replaced by M or W and numbers by 0 (ordinals by 0o)."""
    names = sorted(set(MONTH_NUMBERS) | set(WEEKDAY_NUMBERS), key=len, reverse=True)
    shape = src
    for name in names:
        is_month = name in MONTH_NUMBERS
        pattern = re.escape(name.rstrip(".")) + r"\b"
        shape = re.sub(r"\b" + pattern, "M" if is_month else "W", shape, flags=re.IGNORECASE)
    shape = re.sub(r"\d+(st|nd|rd|th)\b", "0o", shape)
    return re.sub(r"\d+", "0", shape)


def test_same_seed_gives_same_pairs_and_other_seed_differs() -> None:
    assert generate_dates(200, seed=7) == generate_dates(200, seed=7)
    assert generate_dates(200, seed=7) != generate_dates(200, seed=8)
    assert len(generate_dates(0, seed=7)) == 0


def test_every_target_is_iso_and_matches_its_source() -> None:
    for src, tgt in generate_dates(3000, seed=3):
        assert tgt == date.fromisoformat(tgt).isoformat()
        assert date(1900, 1, 1) <= date.fromisoformat(tgt) <= date(2099, 12, 31)
        assert parse_source(src) == date.fromisoformat(tgt), src
        assert "\t" not in src and "\n" not in src and src == src.strip()


def test_known_date_appears_in_the_documented_formats() -> None:
    day = date(2023, 4, 5)  # a Wednesday
    written = {format_date(day, template) for template in FORMATS}
    expected = {
        "April 5, 2023",
        "5 April 2023",
        "April 5th, 2023",
        "Wednesday, April 5, 2023",
        "Wed, 5 Apr 2023",
        "5th of April 2023",
        "the 5th of April, 2023",
        "Apr 5 2023",
        "april 5, 2023",
        "04/05/2023",
        "4/5/2023",
        "5. April 2023",
        "05.04.2023",
        "5.4.2023",
        "Mittwoch, 5. April 2023",
        "Mi, 5. Apr. 2023",
        "5. Apr. 2023",
        "am 5. April 2023",
        "den 05.04.2023",
        "2023-04-05",
        "2023/04/05",
    }
    assert expected <= written
    assert len(written) == len(FORMATS)


@pytest.mark.parametrize(
    ("day", "template", "expected"),
    [
        (date(1999, 3, 1), "{ordinal} of {month_en} {year}", "1st of March 1999"),
        (date(1999, 3, 2), "{ordinal} of {month_en} {year}", "2nd of March 1999"),
        (date(1999, 3, 3), "{ordinal} of {month_en} {year}", "3rd of March 1999"),
        (date(1999, 3, 11), "{ordinal} of {month_en} {year}", "11th of March 1999"),
        (date(1999, 3, 12), "{ordinal} of {month_en} {year}", "12th of March 1999"),
        (date(1999, 3, 13), "{ordinal} of {month_en} {year}", "13th of March 1999"),
        (date(1999, 3, 22), "{ordinal} of {month_en} {year}", "22nd of March 1999"),
        (date(1999, 3, 31), "{ordinal} of {month_en} {year}", "31st of March 1999"),
        (date(1999, 3, 1), "{weekday_de}, {day}. {month_de} {year}", "Montag, 1. März 1999"),
        (date(2000, 5, 7), "{weekday_de_short}, {day}. {month_de_short} {year}", "So, 7. Mai 2000"),
        (date(1900, 10, 9), "{day}. {month_de_short} {year}", "9. Okt. 1900"),
        (
            date(2099, 12, 31),
            "{weekday_en}, {month_en} {day}, {year}",
            "Thursday, December 31, 2099",
        ),
        (date(2001, 12, 3), "{month}/{day}/{year}", "12/3/2001"),
        (date(2001, 12, 3), "{day2}.{month2}.{year}", "03.12.2001"),
    ],
)
def test_format_date_spells_known_dates(day: date, template: str, expected: str) -> None:
    assert format_date(day, template) == expected


def test_sources_have_many_shapes_in_both_languages() -> None:
    sources = [src for src, _ in generate_dates(2000, seed=11)]
    assert len({source_shape(src) for src in sources}) >= 15
    words = {word.strip(",") for src in sources for word in src.split()}
    assert GERMAN_ONLY_MONTHS <= words
    assert ENGLISH_ONLY_MONTHS <= words
    iso_share = sum(bool(re.fullmatch(r"\d{4}-\d\d-\d\d", s)) for s in sources) / len(sources)
    assert 0.01 < iso_share < 0.15  # ISO itself shows up, but only occasionally


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert b"\r" not in data and (data == b"" or data.endswith(b"\n"))
    return data.decode("utf-8").splitlines()


def test_corpus_layout_sizes_and_disjoint_splits(tmp_path: Path) -> None:
    out_dir = tmp_path / "new" / "toy"
    sizes = ToySplitSizes()  # big enough that undeduplicated draws would overlap
    paths = write_toy_corpus(out_dir, sizes, seed=5)
    names = ["train.src", "train.tgt", "valid.src", "valid.tgt", "test.src", "test.tgt"]
    assert paths == [out_dir / name for name in names]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(names)
    lines = {path.name: read_lines(path) for path in paths}
    for prefix in ("train", "valid", "test"):
        expected_count = getattr(sizes, prefix)
        assert len(lines[f"{prefix}.src"]) == len(lines[f"{prefix}.tgt"]) == expected_count
    train, valid, test = (set(lines[f"{p}.src"]) for p in ("train", "valid", "test"))
    assert not train & test and not train & valid and not valid & test
    assert len(train) == sizes.train
    for src, tgt in zip(lines["test.src"], lines["test.tgt"], strict=True):
        assert parse_source(src) == date.fromisoformat(tgt)


def test_held_out_splits_do_not_depend_on_train_size(tmp_path: Path) -> None:
    write_toy_corpus(tmp_path / "a", ToySplitSizes(train=10, valid=20, test=30), seed=2)
    write_toy_corpus(tmp_path / "b", ToySplitSizes(train=99, valid=20, test=30), seed=2)
    for name in ("valid.src", "test.tgt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def corpus_digest(out_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(out_dir.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_corpus_is_identical_across_processes(tmp_path: Path) -> None:
    sizes = ToySplitSizes(train=300, valid=20, test=30)
    write_toy_corpus(tmp_path / "here", sizes, seed=4)
    script = (
        "import sys; from pathlib import Path; from seqcli.toydata import *; "
        "write_toy_corpus(Path(sys.argv[1]), ToySplitSizes(300, 20, 30), seed=4)"
    )
    root = Path(__file__).resolve().parents[1]
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        there = tmp_path / f"there{hash_seed}"
        subprocess.run([sys.executable, "-c", script, str(there)], check=True, env=env)
        assert corpus_digest(there) == corpus_digest(tmp_path / "here")


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train.src").write_text("old\n", encoding="utf-8")

    def fail_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        write_toy_corpus(tmp_path, ToySplitSizes(train=5, valid=1, test=1))
    assert [p.name for p in tmp_path.iterdir()] == ["train.src"]
    assert (tmp_path / "train.src").read_text(encoding="utf-8") == "old\n"


def test_negative_sizes_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="valid"):
        ToySplitSizes(valid=-1)
    with pytest.raises(ConfigError):
        generate_dates(-1, seed=0)
