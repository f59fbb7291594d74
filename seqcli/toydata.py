"""The built-in demo task: dates written in English and German -> ISO 8601 (YYYY-MM-DD)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice
from pathlib import Path

from seqcli.errors import ConfigError
from seqcli.textio import atomic_open

FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2099, 12, 31)

MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")  # fmt: skip
MONTHS_EN_SHORT = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip
MONTHS_DE = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
             "September", "Oktober", "November", "Dezember")  # fmt: skip
# Short German months (März, Mai, Juni, Juli) are written out and so carry no dot.
MONTHS_DE_SHORT = ("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni",
                   "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez.")  # fmt: skip
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_EN_SHORT = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
WEEKDAYS_DE_SHORT = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")

# Each template is one source format, drawn with equal probability. Numeric formats follow
# one convention each, so every source has exactly one reading: "/" with the year last is
# US month/day/year, "." is day.month.year, and a leading year is year/month/day.
FORMATS = (
    # English
    "{month_en} {day}, {year}",
    "{day} {month_en} {year}",
    "{month_en} {ordinal}, {year}",
    "{weekday_en}, {month_en} {day}, {year}",
    "{weekday_en_short}, {day} {month_en_short} {year}",
    "{ordinal} of {month_en} {year}",
    "the {ordinal} of {month_en}, {year}",
    "{month_en_short} {day} {year}",
    "{month_en_lower} {day}, {year}",
    "{day} {month_en_short_lower} {year}",
    "{month2}/{day2}/{year}",
    "{month}/{day}/{year}",
    # German
    "{day}. {month_de} {year}",
    "{day}. {month_de_short} {year}",
    "am {day}. {month_de} {year}",
    "{weekday_de}, {day}. {month_de} {year}",
    "{weekday_de}, den {day}. {month_de} {year}",
    "{weekday_de_short}, {day}. {month_de_short} {year}",
    "{day2}.{month2}.{year}",
    "{day}.{month}.{year}",
    "den {day2}.{month2}.{year}",
    # Year first
    "{year}-{month2}-{day2}",
    "{year}/{month2}/{day2}",
)


@dataclass(frozen=True)
class ToySplitSizes:
    """How many sentence pairs each split of the toy corpus holds."""

    train: int = 20000
    valid: int = 500
    test: int = 1000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ConfigError(f"toy split size {field.name} must be >= 0")


@dataclass(frozen=True)
class DateWords:
    """Every piece a source template may use, spelled out for one date."""

    day: str
    day2: str
    ordinal: str
    month: str
    month2: str
    year: str
    month_en: str
    month_en_short: str
    month_en_lower: str
    month_en_short_lower: str
    month_de: str
    month_de_short: str
    weekday_en: str
    weekday_en_short: str
    weekday_de: str
    weekday_de_short: str


def english_ordinal(day: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    if 11 <= day % 100 <= 13:
        suffix = "th"
    return f"{day}{suffix}"


def date_words(day: date) -> DateWords:
    """Spell out the numbers and names of one date in both languages."""
    month, weekday = day.month - 1, day.weekday()
    return DateWords(
        day=str(day.day),
        day2=f"{day.day:02d}",
        ordinal=english_ordinal(day.day),
        month=str(day.month),
        month2=f"{day.month:02d}",
        year=f"{day.year:04d}",
        month_en=MONTHS_EN[month],
        month_en_short=MONTHS_EN_SHORT[month],
        month_en_lower=MONTHS_EN[month].lower(),
        month_en_short_lower=MONTHS_EN_SHORT[month].lower(),
        month_de=MONTHS_DE[month],
        month_de_short=MONTHS_DE_SHORT[month],
        weekday_en=WEEKDAYS_EN[weekday],
        weekday_en_short=WEEKDAYS_EN_SHORT[weekday],
        weekday_de=WEEKDAYS_DE[weekday],
        weekday_de_short=WEEKDAYS_DE_SHORT[weekday],
    )


def format_date(day: date, template: str) -> str:
    """Write one date in the format of one of the FORMATS templates."""
    return template.format_map(dataclasses.asdict(date_words(day)))


def draw_pairs(rng: random.Random) -> Iterator[tuple[str, str]]:
    """An endless stream of (source, target) pairs drawn from rng."""
    day_count = (LAST_DATE - FIRST_DATE).days + 1
    while True:
        day = FIRST_DATE + timedelta(days=rng.randrange(day_count))
        yield format_date(day, rng.choice(FORMATS)), day.isoformat()


def generate_dates(n: int, seed: int) -> list[tuple[str, str]]:
    """n (source, target) pairs, deterministic for a given seed.

    Dates are uniform over 1900-01-01..2099-12-31 and formats uniform over FORMATS;
    a source may repeat within the list.
    """
    if n < 0:
        raise ConfigError(f"number of toy pairs must be >= 0, got {n}")
    return list(islice(draw_pairs(random.Random(seed)), n))


def draw_unique_pairs(total: int, seed: int) -> list[tuple[str, str]]:
    """The first `total` pairs of the seed's stream whose sources have not been seen before."""
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for src, tgt in draw_pairs(random.Random(seed)):
        if len(pairs) == total:
            break
        if src not in seen:
            seen.add(src)
            pairs.append((src, tgt))
    return pairs


def write_lines_atomically(path: Path, lines: Iterable[str]) -> None:
    """Write lines (UTF-8, LF) so that path holds either its old content or all of the new."""
    with atomic_open(path) as handle:
        handle.writelines(line + "\n" for line in lines)


def write_toy_corpus(out_dir: Path, sizes: ToySplitSizes = ToySplitSizes(), seed: int = 1) -> list[Path]:
    """Write train/valid/test splits into out_dir (created if missing); return the written paths.

    Each split is PREFIX.src / PREFIX.tgt, one pair per line, UTF-8, LF, written atomically.
    The splits are disjoint on source strings.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = draw_unique_pairs(sizes.test + sizes.valid + sizes.train, seed)
    # Test comes first, then valid, so that changing the train size keeps both held-out sets.
    splits = {
        "test": pairs[: sizes.test],
        "valid": pairs[sizes.test : sizes.test + sizes.valid],
        "train": pairs[sizes.test + sizes.valid :],
    }
    written: list[Path] = []
    for prefix in ("train", "valid", "test"):
        for side, suffix in enumerate(("src", "tgt")):
            path = out_dir / f"{prefix}.{suffix}"
            write_lines_atomically(path, (pair[side] for pair in splits[prefix]))
            written.append(path)
    return written
