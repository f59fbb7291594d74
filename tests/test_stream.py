"""Live input: lines are answered as they arrive, and files are still read in full chunks."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import ENV, run_cli

from seqcli.errors import DataError
from seqcli.textio import open_input_chunks, read_chunks

ANSWER_TIMEOUT = 60.0  # seconds; generous for a loaded machine, the answer normally takes well under 1 s


@pytest.fixture
def pipe() -> Iterator[tuple[object, int]]:
    """A pipe's read end as a binary stream, and its write end's descriptor."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as stream:
        yield stream, write_fd
    with contextlib.suppress(OSError):  # unless the test closed it
        os.close(write_fd)


def test_a_pipe_hands_on_what_has_arrived_without_waiting_for_more(pipe: tuple[object, int]) -> None:
    stream, write_fd = pipe
    chunks = read_chunks(stream, "<pipe>", max_lines=100)  # type: ignore[arg-type]
    os.write(write_fd, b"one\ntwo\r\nthr")
    assert next(chunks) == ["one", "two"]  # the unfinished third line waits for its end
    os.write(write_fd, b"ee\n")
    assert next(chunks) == ["three"]
    os.write(write_fd, b"\nlast without a line end")
    os.close(write_fd)
    assert next(chunks) == ["", "last without a line end"]
    assert next(chunks, None) is None


def test_a_pipe_chunk_stops_at_max_lines(pipe: tuple[object, int]) -> None:
    stream, write_fd = pipe
    chunks = read_chunks(stream, "<pipe>", max_lines=2)  # type: ignore[arg-type]
    os.write(write_fd, b"a\nb\nc\n")
    os.close(write_fd)
    assert list(chunks) == [["a", "b"], ["c"]]


def test_a_file_is_read_in_full_chunks_and_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(5)))
    with open_input_chunks(path, max_lines=2) as chunks:
        assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    path.write_bytes(b"a\nb\nc\xff\n")
    with open_input_chunks(path, max_lines=2) as chunks:
        assert next(chunks) == ["a", "b"]
        with pytest.raises(DataError, match=r"in.txt:3: invalid UTF-8 at byte 2"):
            next(chunks)


class LiveProcess:
    """A seqcli command reading a pipe that the test writes one line at a time."""

    def __init__(self, *args: str, launcher: tuple[str, ...] = (sys.executable, "-m", "seqcli")):
        self.process = subprocess.Popen(
            [*launcher, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line.rstrip("\n"))
        self.answers.put(None)

    def ask(self, line: str) -> str:
        """Write one line and wait for its answer, with stdin left open."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        try:
            answer = self.answers.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"no answer to {line!r} within {ANSWER_TIMEOUT} s") from None
        assert answer is not None, self.finish()
        return answer

    def finish(self) -> str:
        """Close stdin; the exit status must be 0, and no answer may be left over. Returns stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        returncode = self.process.wait(timeout=ANSWER_TIMEOUT)
        stderr = self.process.stderr.read()
        assert returncode == 0, stderr
        assert self.answers.get(timeout=5) is None
        return stderr


@pytest.mark.parametrize(
    "options",
    [
        ["--beam-size", "3", "--n-best", "2"],
        pytest.param(["--beam-size", "1"], marks=pytest.mark.slow),  # the same path: slow
        pytest.param(["--alignments", "/dev/null"], marks=pytest.mark.slow),
    ],
)
def test_translate_answers_each_line_before_the_next_is_written(
    trained_run: Path, options: list[str]
) -> None:
    lines = ["March 3, 2001", "", "4 July 1999", "den 08.09.2041"]
    expected = run_cli("translate", str(trained_run), *options, input_text="\n".join(lines) + "\n")
    live = LiveProcess("translate", str(trained_run), *options)
    answers = [live.ask(line) for line in lines]
    live.finish()
    assert answers == expected.stdout.splitlines()


def test_embed_answers_each_line_before_the_next_is_written(tmp_path: Path) -> None:
    text = "\n".join(f"the {a} sees the {b} ." for a in ("ba", "be", "bi") for b in ("bo", "bu")) + "\n"
    (tmp_path / "train.txt").write_text(text * 20)
    (tmp_path / "valid.txt").write_text(text)
    run_dir = tmp_path / "st"
    run_cli(
        "train", "--task", "skip-thought",
        "--train", str(tmp_path / "train.txt"), "--valid", str(tmp_path / "valid.txt"),
        "--vocab-size", "40", "--cell", "gru", "--unidirectional", "--embedding-size", "8",
        "--hidden-size", "12", "--encoder-layers", "1", "--decoder-layers", "1",
        "--max-steps", "4", "--eval-every", "4", "--out", str(run_dir),
    )  # fmt: skip
    lines = ["the ba sees the bo .", "", "the bi sees the bu ."]
    expected = run_cli("embed", str(run_dir), input_text="\n".join(lines) + "\n").stdout.splitlines()
    live = LiveProcess("embed", str(run_dir))
    answers = [live.ask(line) for line in lines]
    live.finish()
    # A line embedded alone and the same line embedded in a batch may differ in the last printed digit
    # (the matrix products take another path), so the vectors are compared as numbers.
    assert len(answers) == len(expected)
    for answer, reference in zip(answers, expected, strict=True):
        numbers = [float(x) for x in answer.split()]
        assert numbers == pytest.approx([float(x) for x in reference.split()], abs=1e-5)
    assert len(answers[0].split()) == 12 and set(answers[1].split()) == {"0"}


@pytest.mark.slow
def test_translate_under_torchrun_answers_each_line(trained_run: Path) -> None:
    lines = ["March 3, 2001", "4 July 1999", "", "den 08.09.2041"]
    expected = run_cli("translate", str(trained_run), "--beam-size", "2", input_text="\n".join(lines) + "\n")
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2")
    live = LiveProcess(
        "translate",
        str(trained_run),
        "--beam-size",
        "2",
        "--device",
        "cpu",
        launcher=(*torchrun, "-m", "seqcli"),
    )
    answers = [live.ask(line) for line in lines]
    live.finish()
    assert answers == expected.stdout.splitlines()
