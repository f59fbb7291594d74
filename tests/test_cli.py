"""End-to-end: the commands as a user runs them, through real processes and pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

SEQCLI = [sys.executable, "-m", "seqcli"]


def pipeline(*commands: list[str], stdin_path: Path) -> str:
    """Run commands connected by OS pipes, like `a < file | b | c`; returns the last stdout."""
    processes: list[subprocess.Popen[bytes]] = []
    with open(stdin_path, "rb") as first_input:
        source = first_input
        for command in commands:
            proc = subprocess.Popen(command, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if processes:
                assert processes[-1].stdout is not None
                processes[-1].stdout.close()  # let the writer see a closed pipe if we exit early
            processes.append(proc)
            source = proc.stdout  # type: ignore[assignment]
        out, err = processes[-1].communicate(timeout=300)
    for proc in processes:
        proc.wait(timeout=300)
        assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return out.decode()


def test_every_command_has_help() -> None:
    for command in ([], ["train"], ["translate"], ["evaluate"], ["data", "toy"], ["tokenize", "encode"]):
        result = run_cli(*command, "--help")
        assert "Usage" in result.stdout and len(result.stdout) > 200


def test_train_writes_a_self_contained_run_dir(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.toml", "src.spm", "tgt.spm", "best.safetensors", "last.safetensors", "log.jsonl"} <= names
    records = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [200, 400]
    assert sum(r["is_best"] for r in records) >= 1
    assert records[-1]["valid_loss"] < 1.0
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # drawn at each validation


def test_translate_and_evaluate_through_pipes(trained_run: Path, toy_dir: Path) -> None:
    """tokenize encode | tokenize decode | translate | evaluate, all as separate processes."""
    spm = str(trained_run / "src.spm")
    out = pipeline(
        [*SEQCLI, "tokenize", "encode", "--model", spm],
        [*SEQCLI, "tokenize", "decode", "--model", spm],
        [*SEQCLI, "translate", str(trained_run), "--beam-size", "3"],
        [*SEQCLI, "evaluate", "--ref", str(toy_dir / "test.tgt"), "--json"],
        stdin_path=toy_dir / "test.src",
    )
    scores = json.loads(out)
    assert scores["lines"] == 200
    assert scores["exact_match"] >= 60.0, scores  # 400 tiny steps; `make demo` reaches 99%


def test_one_line_out_per_line_in_and_empty_stays_empty(trained_run: Path) -> None:
    text = "April 5, 2023\n\n   \n5. Mai 1999\n\n"
    result = run_cli("translate", str(trained_run), input_text=text)
    lines = result.stdout.split("\n")
    assert len(lines) == 6 and lines[-1] == ""
    assert lines[1] == "" and lines[4] == ""
    assert lines[0].startswith("20") or lines[0].startswith("19")


def test_beam_one_equals_greedy_and_batch_size_does_not_matter(trained_run: Path, toy_dir: Path) -> None:
    source = (toy_dir / "test.src").read_text()
    greedy = run_cli("translate", str(trained_run), "--beam-size", "1", input_text=source).stdout
    small = run_cli("translate", str(trained_run), "--beam-size", "1", "--batch-size", "7", input_text=source)
    assert small.stdout == greedy
    beam = run_cli("translate", str(trained_run), "--beam-size", "4", "--batch-size", "64", input_text=source)
    beam_small = run_cli(
        "translate", str(trained_run), "--beam-size", "4", "--batch-size", "5", input_text=source
    )
    assert beam.stdout == beam_small.stdout


def test_n_best_writes_tab_separated_hypotheses(trained_run: Path) -> None:
    result = run_cli(
        "translate", str(trained_run), "--beam-size", "3", "--n-best", "3", input_text="3/4/2001\n"
    )
    assert len(result.stdout.splitlines()) == 1
    assert len(result.stdout.rstrip("\n").split("\t")) == 3


def test_evaluate_refuses_different_line_counts(tmp_path: Path) -> None:
    (tmp_path / "ref").write_text("a\nb\n")
    (tmp_path / "hyp").write_text("a\n")
    result = run_cli("evaluate", "--ref", str(tmp_path / "ref"), str(tmp_path / "hyp"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"seqcli: error: {tmp_path / 'ref'} has 2 lines but the hypotheses have 1"
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["train", "--train", "nowhere/train", "--valid", "nowhere/valid", "--out", "{tmp}/r"],
            1,
            "nowhere/train.src: file not found",
        ),
        (
            ["train", "--set", "model.cell=transformer", "--out", "{tmp}/r"],
            2,
            "model.cell: 'transformer' is not one of",
        ),
        (["translate", "{tmp}/no-run"], 1, "no-run: run directory not found"),
        (["translate", "{run}", "--beam-size", "0"], 2, "--beam-size: 0 must be"),
        (["translate", "{run}", "--input", "{tmp}/x", "--output", "{tmp}/x"], 2, "is also an input file"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(
    args: list[str], code: int, message: str, tmp_path: Path, trained_run: Path
) -> None:
    (tmp_path / "x").write_text("keep me\n")
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(trained_run)) for a in args]
    result = run_cli(*filled, check=False)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert (tmp_path / "x").read_text() == "keep me\n"
