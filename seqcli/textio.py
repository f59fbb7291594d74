"""Reading and writing text lines: strict UTF-8, errors that name file and line, atomic writes."""

from __future__ import annotations

import os
import select
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast

from seqcli.errors import DataError, UsageError

STDIO = "-"

# A live input (a person typing, `tail -f`, a program waiting for each answer) is handed on
# once it pauses this long, or this long after the first line of a chunk arrived, whichever
# comes first. A file or a fast pipe never pauses, so its chunks stay full.
INPUT_PAUSE_SECONDS = 0.01
CHUNK_WAIT_SECONDS = 0.2
READ_BYTES = 1 << 16


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
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
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
            yield cast(TextIO | BinaryIO, handle)  # text or bytes, as mode says
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


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
def _open_binary(path: Path | str, buffering: int = -1) -> Iterator[tuple[BinaryIO, str]]:
    """stdin for '-', otherwise the file opened for reading; with the name errors should use."""
    if str(path) == STDIO:
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        handle = open(path, "rb", buffering=buffering)  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with handle:
        yield cast(BinaryIO, handle), str(path)


@contextmanager
def open_input(path: Path | str) -> Iterator[Iterator[str]]:
    """Checked lines from a file or stdin, streamed."""
    with _open_binary(path) as (stream, source):
        yield iter_lines(stream, source)


@contextmanager
def open_input_chunks(path: Path | str, max_lines: int) -> Iterator[Iterator[list[str]]]:
    """Checked lines from a file or stdin, in chunks of at most max_lines, each handed on as
    soon as the input pauses (see `read_chunks`)."""
    with _open_binary(path, buffering=0) as (stream, source):
        yield read_chunks(stream, source, max_lines)


def read_chunks(stream: BinaryIO, source: str, max_lines: int) -> Iterator[list[str]]:
    """Lines of a stream in chunks: all that has arrived, up to max_lines, once the input pauses.

    Reading line by line would block on a line that is not there yet, and reading a fixed
    count would keep the lines that did arrive waiting; so the file descriptor is read
    directly, and select() tells whether more input is ready. A stream without a descriptor
    (a test's BytesIO) is read in chunks of max_lines.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        lines = iter_lines(stream, source)
        while chunk := [line for _, line in zip(range(max_lines), lines, strict=False)]:
            yield chunk
        return
    reader = _LineReader(fd)
    number = 0
    while raw_lines := reader.next_chunk(max_lines):
        yield [decode_line(raw, source, number + i) for i, raw in enumerate(raw_lines, start=1)]
        number += len(raw_lines)


class _LineReader:
    """Raw lines of a file descriptor, read in blocks; the unfinished last line is kept."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lines: list[bytes] = []  # complete lines, without their \n
        self.fragments: list[bytes] = []  # the line being read, in pieces
        self.at_end = False

    def next_chunk(self, max_lines: int) -> list[bytes]:
        """Block until a line (or the end) arrives, then take what else is ready; [] at the end."""
        first_arrival: float | None = None
        while len(self.lines) < max_lines and not self.at_end:
            if self.lines:
                first_arrival = first_arrival or time.monotonic()
                waited = time.monotonic() - first_arrival
                if waited >= CHUNK_WAIT_SECONDS or not self._ready(INPUT_PAUSE_SECONDS):
                    break
            self._read_block()
        chunk, self.lines = self.lines[:max_lines], self.lines[max_lines:]
        return chunk

    def _ready(self, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([self.fd], [], [], timeout)
        except (OSError, ValueError):  # a descriptor select cannot watch: treat it as a file
            return True
        return bool(readable)

    def _read_block(self) -> None:
        block = os.read(self.fd, READ_BYTES)
        if not block:
            self.at_end = True
            if self.fragments:  # a last line without a line ending
                self.lines.append(b"".join(self.fragments))
                self.fragments = []
            return
        *complete, rest = block.split(b"\n")
        if complete:
            self.lines.append(b"".join([*self.fragments, complete[0]]))
            self.lines.extend(complete[1:])
            self.fragments = []
        if rest:
            self.fragments.append(rest)
