"""Exact resume: a run killed part-way and resumed ends with the same weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ENV, USER_ENV, run_cli
from conftest import TINY_TRAIN_ARGS
from safetensors.torch import load_file
from test_training import SilentReporter

from seqcli import checkpoint
from seqcli.config import Config, config_from_dict
from seqcli.train import Trainer

LIMITS = ("--max-steps", "60", "--eval-every", "20", "--seed", "5", "--dropout", "0.2")


def train_args(toy_dir: Path) -> list[str]:
    # Dropout and scheduled sampling make the run depend on every random-number state.
    return [
        "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
        *TINY_TRAIN_ARGS, *LIMITS,
        "--teacher-forcing", "linear", "--tf-slope", "0.01",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    run_cli(*train_args(toy_dir), "--out", str(run_dir))
    return load_file(run_dir / checkpoint.LAST)


def start_and_stop_after(
    args: list[str], run_dir: Path, step: int, sig: signal.Signals, env: dict[str, str] = ENV
) -> int:
    """Start training, wait until the log shows `step`, send `sig`; returns the exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "seqcli", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    log = run_dir / checkpoint.LOG_FILE
    while time.monotonic() < deadline and process.poll() is None:
        # The resumable state is written after the log line; wait for it, not just the log.
        logged = log.exists() and any(json.loads(x)["step"] >= step for x in log.read_text().splitlines())
        if logged and (run_dir / checkpoint.TRAIN_STATE).exists():
            break
        time.sleep(0.05)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    start_and_stop_after.stderr = stderr  # type: ignore[attr-defined]
    return process.returncode


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name


def test_sigkill_then_resume_gives_the_uninterrupted_weights(
    toy_dir: Path, tmp_path: Path, uninterrupted: dict
) -> None:
    """Dropout and scheduled sampling on, killed with no chance to save more than its last
    evaluation's state."""
    run_dir = tmp_path / "run"
    args = [*train_args(toy_dir), "--out", str(run_dir)]
    code = start_and_stop_after(args, run_dir, 20, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert checkpoint.load_training_state(run_dir).loop["step"] in (20, 40)
    resumed = run_cli("train", "--resume", str(run_dir))
    assert "note:" not in resumed.stderr  # same device, same threads: nothing to warn about
    assert_same_weights(load_file(run_dir / checkpoint.LAST), uninterrupted)
    steps = [json.loads(x)["step"] for x in (run_dir / checkpoint.LOG_FILE).read_text().splitlines()]
    assert steps == [20, 40, 60]


def test_resume_keeps_the_saved_thread_count_and_says_when_told_otherwise(
    toy_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_cli(
        *train_args(toy_dir), "--max-steps", "20", "--out", str(run_dir), env={**ENV, "OMP_NUM_THREADS": "2"}
    )
    kept = run_cli("train", "--resume", str(run_dir), "--max-steps", "20", env=USER_ENV)
    assert "threads 2 (as the run was saved with" in kept.stderr and "note:" not in kept.stderr
    result = run_cli("train", "--resume", str(run_dir), "--threads", "1")  # nothing left to train
    assert "saved with torch threads 2 and continues with 1" in result.stderr


def test_sigint_saves_exits_130_and_resumes_exactly(
    toy_dir: Path, tmp_path: Path, uninterrupted: dict
) -> None:
    run_dir = tmp_path / "run"
    args = [*train_args(toy_dir), "--out", str(run_dir)]
    code = start_and_stop_after(args, run_dir, 20, signal.SIGINT)
    assert code == 130
    stderr = start_and_stop_after.stderr  # type: ignore[attr-defined]
    assert "interrupted at step" in stderr and "--resume" in stderr
    saved_step = checkpoint.load_training_state(run_dir).loop["step"]
    assert 20 <= saved_step < 60
    run_cli("train", "--resume", str(run_dir))
    assert_same_weights(load_file(run_dir / checkpoint.LAST), uninterrupted)


def test_resume_refuses_a_different_model(toy_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(*train_args(toy_dir), "--max-steps", "20", "--out", str(run_dir))
    result = run_cli("train", "--resume", str(run_dir), "--hidden-size", "32", check=False)
    assert result.returncode == 2 and "model settings differ" in result.stderr


def test_out_and_resume_are_exclusive(tmp_path: Path) -> None:
    result = run_cli("train", "--out", str(tmp_path / "a"), "--resume", str(tmp_path / "b"), check=False)
    assert result.returncode == 2 and "give exactly one" in result.stderr


def hard_attention_config(toy_dir: Path, max_steps: int) -> Config:
    return config_from_dict(
        {
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 100, "joint": True},
            "model": {
                "attention": "hard",
                "embedding_size": 16,
                "hidden_size": 32,
                "encoder_layers": 1,
                "decoder_layers": 1,
            },
            "train": {"batch_tokens": 600, "max_steps": max_steps, "eval_every": 3, "seed": 3},
        }
    )


def test_hard_attention_resume_gives_the_uninterrupted_weights(toy_dir: Path, tmp_path: Path) -> None:
    # REINFORCE's baseline is a running average of past rewards: without it in the saved
    # state, the first updates after a resume would weigh the sampled positions differently.
    whole = tmp_path / "whole"
    Trainer(hard_attention_config(toy_dir, 9), whole, "cpu").run(SilentReporter())
    split = tmp_path / "split"
    Trainer(hard_attention_config(toy_dir, 6), split, "cpu").run(SilentReporter())
    Trainer.resume(split, hard_attention_config(toy_dir, 9), "cpu").run(SilentReporter())
    assert_same_weights(load_file(split / checkpoint.LAST), load_file(whole / checkpoint.LAST))


@pytest.mark.slow  # the baseline's resume is tested in-process above; this one as users run it
def test_hard_attention_on_two_threads_sigkill_then_resume_is_exact(toy_dir: Path, tmp_path: Path) -> None:
    args = [*train_args(toy_dir), "--attention", "hard", "--max-steps", "40", "--threads", "2"]
    whole = tmp_path / "whole"
    run_cli(*args, "--out", str(whole))
    run_dir = tmp_path / "run"
    code = start_and_stop_after([*args, "--out", str(run_dir)], run_dir, 20, signal.SIGKILL)
    assert code == -signal.SIGKILL and checkpoint.load_training_state(run_dir).loop["step"] == 20
    run_cli("train", "--resume", str(run_dir))
    assert_same_weights(load_file(run_dir / checkpoint.LAST), load_file(whole / checkpoint.LAST))
