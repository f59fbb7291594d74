"""Bad input: one line naming the file, line or option; exit 1 (2 for usage); nothing damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import TINY_TRAIN_ARGS


def assert_one_line_error(result, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_invalid_utf8_names_line_and_byte_and_keeps_the_output_file(
    trained_run: Path, tmp_path: Path
) -> None:
    source = write_bytes(tmp_path / "in.txt", b"5. Mai 1999\nApril \xe9 2001\n")
    output = write_bytes(tmp_path / "out.txt", b"previous results\n")
    result = run_cli(
        "translate", str(trained_run), "--input", str(source), "--output", str(output), check=False
    )
    assert_one_line_error(result, 1, "in.txt:2: invalid UTF-8 at byte 7")
    assert output.read_bytes() == b"previous results\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_nul_bytes_are_refused(trained_run: Path) -> None:
    result = run_cli("translate", str(trained_run), input_text="ok\nbad\x00line\n", check=False)
    assert_one_line_error(result, 1, "<stdin>:2: NUL byte at byte 4")


def test_crlf_input_translates_like_lf(trained_run: Path) -> None:
    lf = run_cli("translate", str(trained_run), input_text="5. Mai 1999\nApril 3, 2001\n").stdout
    crlf = run_cli("translate", str(trained_run), input_text="5. Mai 1999\r\nApril 3, 2001\r\n").stdout
    assert crlf == lf and len(lf.splitlines()) == 2


def test_a_very_long_line_is_translated_not_dropped(trained_run: Path) -> None:
    long_line = " ".join(["5. Mai 1999"] * 300)
    result = run_cli("translate", str(trained_run), "--beam-size", "2", input_text=f"a\n{long_line}\nb\n")
    assert len(result.stdout.split("\n")) == 4 and result.stdout.split("\n")[1] != ""


def test_pairs_left_out_are_said_with_count_share_and_option(toy_dir: Path, tmp_path: Path) -> None:
    src = (toy_dir / "valid.src").read_text().splitlines()
    tgt = (toy_dir / "valid.tgt").read_text().splitlines()
    src[0] = " ".join(["Montag, 1. März 1999"] * 50)
    tgt[1] = ""  # an empty side is never trained on
    (tmp_path / "train.src").write_text("\n".join(src) + "\n")
    (tmp_path / "train.tgt").write_text("\n".join(tgt) + "\n")
    args = ["train", "--train", str(tmp_path / "train"), "--valid", str(toy_dir / "valid"), *TINY_TRAIN_ARGS,
            "--max-steps", "2", "--eval-every", "2"]  # fmt: skip
    limited = run_cli(*args, "--set", "data.max_tokens_per_sentence=60", "--out", str(tmp_path / "run"))
    assert "warning: 1 of 100 training pairs (1.00%) have an empty side and are left out" in limited.stderr
    assert (
        "warning: 1 of 100 training pairs (1.00%) have a side longer than 60 pieces and are left out;"
        " --set data.max_tokens_per_sentence=0 keeps them" in limited.stderr
    )
    assert "train_pairs 98, left_out 2" in limited.stderr
    kept = run_cli(*args, "--out", str(tmp_path / "all"))  # by default the longest pair sets the length
    assert "longer than" not in kept.stderr and "train_pairs 99, left_out 1" in kept.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--n-best", "3", "--beam-size", "2"], ["--n-best: 3 exceeds beam-size 2"]),
        (["--length-penalty", "-1"], ["--length-penalty: -1.0 must be at least 0"]),
        (["--device", "tpu"], ["--device"]),
    ],
)
def test_conflicting_or_unknown_decode_options_are_usage_errors(
    trained_run: Path, args: list[str], fragments: list[str]
) -> None:
    result = run_cli("translate", str(trained_run), *args, input_text="x\n", check=False)
    assert_one_line_error(result, 2, *fragments)


def test_bad_set_syntax_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("train", "--set", "cell=gru", "--out", str(tmp_path / "r"), check=False)
    assert_one_line_error(result, 2, "--set cell=gru: expected section.name=value")


def test_parallel_files_with_different_lengths(toy_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "c.src").write_text("a\nb\n")
    (tmp_path / "c.tgt").write_text("a\n")
    result = run_cli(
        "train", "--train", str(tmp_path / "c"), "--valid", str(toy_dir / "valid"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--out", str(tmp_path / "r"), check=False,
    )  # fmt: skip
    assert_one_line_error(result, 1, "c.src has 2 lines but", "c.tgt has 1")
    assert not (tmp_path / "r").exists()


def test_an_existing_run_dir_is_never_overwritten(trained_run: Path, toy_dir: Path) -> None:
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    result = run_cli(
        "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--out", str(trained_run), check=False,
    )  # fmt: skip
    assert_one_line_error(result, 2, "directory exists and is not empty")
    assert {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()} == before


def test_tokenize_refuses_to_overwrite_its_input(tmp_path: Path, trained_run: Path) -> None:
    text = write_bytes(tmp_path / "t.txt", b"hello\n")
    result = run_cli(
        "tokenize", "encode", "--model", str(trained_run / "src.spm"), "--input", str(text), "--output",
        str(text), check=False,
    )  # fmt: skip
    assert_one_line_error(result, 2, "is also an input file")
    assert text.read_bytes() == b"hello\n"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "translate", str(tmp_path / "none"), input_text="x\n", check=False)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_many_lines_stream_through_a_pipe_without_loss(trained_run: Path) -> None:
    lines = [f"{1 + i % 28}. Mai {1900 + i % 200}" if i % 7 else "" for i in range(5000)]
    result = run_cli("translate", str(trained_run), input_text="\n".join(lines) + "\n")
    outputs = result.stdout.split("\n")
    assert len(outputs) == 5001 and outputs[-1] == ""
    assert [o == "" for o in outputs[:-1]] == [line == "" for line in lines]
