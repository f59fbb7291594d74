"""Reading and writing text lines: strict UTF-8, errors that name file and line, atomic writes."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from seqcli.errors import DataError, UsageError

STDIO = "-"


def decode_line(raw: bytes, source: str, number: int) -> str:
    """One line of bytes as text without its line ending; CRLF is accepted."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{source}:{number}: NUL byte at byte {nul + 1} of the line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{source}:{number}: invalid UTF-8 at byte {error.start + 1} of the line") from None
    return text.rstrip("\n").removesuffix("\r")


def iter_lines(stream: BinaryIO, source: str) -> Iterator[str]:
    """Lines of a binary stream, decoded and checked, one at a time."""
    for number, raw in enumerate(stream, start=1):
        yield decode_line(raw, source, number)


def read_lines(path: Path | str) -> list[str]:
    """All lines of a file (or stdin for '-'); a missing file is a DataError naming it."""
    if str(path) == STDIO:
        return list(iter_lines(sys.stdin.buffer, "<stdin>"))
    try:
        with open(path, "rb") as handle:
            return list(iter_lines(handle, str(path)))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None


def read_nonempty_file(path: Path) -> list[str]:
    lines = read_lines(path)
    if not lines:
        raise DataError(f"{path}: file is empty")
    return lines


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[TextIO | BinaryIO]:
    """Write to a temporary file beside path, then flush, fsync and rename it into place.

    Readers never see a half-written file, and a crash leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600; give a normal file's mode
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=None if encoding is None else "\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)  # type: ignore[arg-type]


def check_distinct_paths(inputs: list[Path | str], output: Path | str) -> None:
    """Refuse to write an output over one of the inputs."""
    if str(output) == STDIO:
        return
    target = Path(output).resolve()
    for source in inputs:
        if str(source) != STDIO and Path(source).resolve() == target:
            raise UsageError(f"--output {output}: is also an input file")


@contextmanager
def open_output(path: Path | str) -> Iterator[TextIO]:
    """stdout for '-', otherwise an atomically written file."""
    if str(path) == STDIO:
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_open(Path(path)) as handle:
        yield handle  # type: ignore[misc]


@contextmanager
def open_input(path: Path | str) -> Iterator[Iterator[str]]:
    """Checked lines from a file or stdin, streamed."""
    if str(path) == STDIO:
        yield iter_lines(sys.stdin.buffer, "<stdin>")
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with handle:
        yield iter_lines(handle, str(path))
