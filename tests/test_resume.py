"""Exact resume: a run killed at any point and resumed ends with the uninterrupted run's weights.

Two ways of killing: SIGKILL to a real `seqcli train` process (every attention; skip-thought
in test_skipthought.py), and, in-process, an exception raised at a chosen point of a run with
the default CPU settings (word and variational dropout, a cosine schedule, checkpoint
averaging, the length-penalty search): inside an update, inside a validation, before and after
each file write, inside the end-of-training steps. Either way nothing but the files survives,
as after a crash; the resumed run must end with the same weights, log and finish.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ENV, USER_ENV, run_cli
from conftest import TINY_TRAIN_ARGS, write_side_tokenizers
from safetensors.torch import load_file
from test_training import SilentReporter

import seqcli.textio
import seqcli.train
import seqcli.translation_task
from seqcli import checkpoint
from seqcli.average import step_checkpoints
from seqcli.config import Config, config_from_dict
from seqcli.finish import FINISH_FILE, finish_run
from seqcli.presets import preset_config
from seqcli.tasks import new_trainer, resume_trainer
from seqcli.train import Trainer

# Dropout and scheduled sampling make a run depend on every random-number state.
LIMITS = ("--max-steps", "20", "--eval-every", "10", "--seed", "5", "--dropout", "0.2")
SAMPLED = ("--teacher-forcing", "linear", "--tf-slope", "0.01")


@pytest.fixture(scope="module")
def train_args(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[str]]:
    """`seqcli train` on the toy corpus with the small settings above, plus extra arguments.
    Every run is given one SentencePiece model per side, trained once for the module, so no
    process trains its own: the runs start sooner, and what a resume restores is the same."""
    src_spm, tgt_spm = write_side_tokenizers(toy_dir / "train", tmp_path_factory.mktemp("spm"), 120)
    models = ["--src-spm", str(src_spm), "--tgt-spm", str(tgt_spm)]

    def args(*extra: str) -> list[str]:
        return [
            "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
            *TINY_TRAIN_ARGS, *models, *LIMITS, *SAMPLED, *extra,
        ]  # fmt: skip

    return args


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


@pytest.fixture(scope="module")
def uninterrupted(
    train_args: Callable[..., list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """The whole run of an attention kind, trained once per module."""
    runs: dict[str, Path] = {}

    def run(attention: str) -> Path:
        if attention not in runs:
            runs[attention] = tmp_path_factory.mktemp("whole") / attention
            run_cli(*train_args("--attention", attention), "--out", str(runs[attention]))
        return runs[attention]

    return run


@pytest.mark.parametrize("attention", ["none", "additive", "dot", "general", "hard"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(
    train_args: Callable[..., list[str]], tmp_path: Path, uninterrupted: Callable[[str], Path], attention: str
) -> None:
    """Killed with no chance to save more than its last evaluation's state (hard attention's
    REINFORCE baseline included)."""
    run_dir = tmp_path / "run"
    args = [*train_args("--attention", attention), "--out", str(run_dir)]
    assert start_and_stop_after(args, run_dir, 10, signal.SIGKILL) == -signal.SIGKILL
    assert checkpoint.load_training_state(run_dir).loop["step"] in (10, 20)
    resumed = run_cli("train", "--resume", str(run_dir))
    assert "note:" not in resumed.stderr  # same device, same threads: nothing to warn about
    whole = uninterrupted(attention)
    assert_same_weights(load_file(run_dir / checkpoint.LAST), load_file(whole / checkpoint.LAST))
    assert checkpoint.read_log(run_dir)[-1]["valid_loss"] == checkpoint.read_log(whole)[-1]["valid_loss"]
    assert [r["step"] for r in checkpoint.read_log(run_dir)] == [10, 20]


def test_sigint_saves_exits_130_and_resumes_exactly(
    train_args: Callable[..., list[str]], tmp_path: Path, uninterrupted: Callable[[str], Path]
) -> None:
    run_dir = tmp_path / "run"
    args = [*train_args("--attention", "general"), "--out", str(run_dir)]
    code = start_and_stop_after(args, run_dir, 10, signal.SIGINT)
    assert code == 130
    stderr = start_and_stop_after.stderr  # type: ignore[attr-defined]
    assert "interrupted at step" in stderr and "--resume" in stderr
    assert 10 <= checkpoint.load_training_state(run_dir).loop["step"] < 20
    run_cli("train", "--resume", str(run_dir))
    whole = uninterrupted("general")
    assert_same_weights(load_file(run_dir / checkpoint.LAST), load_file(whole / checkpoint.LAST))


def test_resume_keeps_the_saved_thread_count_and_says_when_told_otherwise(
    train_args: Callable[..., list[str]], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_cli(*train_args(), "--max-steps", "10", "--out", str(run_dir), env={**ENV, "OMP_NUM_THREADS": "2"})
    kept = run_cli("train", "--resume", str(run_dir), env=USER_ENV)  # nothing left to train
    assert "threads 2 (as the run was saved with" in kept.stderr and "note:" not in kept.stderr
    result = run_cli("train", "--resume", str(run_dir), "--threads", "1")
    assert "saved with torch threads 2 and continues with 1" in result.stderr


def test_resume_refuses_a_different_model(train_args: Callable[..., list[str]], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(*train_args(), "--max-steps", "10", "--out", str(run_dir))
    result = run_cli("train", "--resume", str(run_dir), "--hidden-size", "32", check=False)
    assert result.returncode == 2 and "model settings differ" in result.stderr


def test_out_and_resume_are_exclusive(tmp_path: Path) -> None:
    result = run_cli("train", "--out", str(tmp_path / "a"), "--resume", str(tmp_path / "b"), check=False)
    assert result.returncode == 2 and "give exactly one" in result.stderr


# Killed in-process at chosen points --------------------------------------------------------


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so that no `except Exception` on the way catches it."""


def default_settings(toy_dir: Path) -> Config:
    """The settings a run without a config file trains with (the cpu-small preset), on a tiny
    model: word and variational dropout, a warm-up and cosine schedule, the mean of the last
    checkpoints and the length-penalty search at the end."""
    values = preset_config("cpu-small")
    values["data"] = {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")}
    values["tokenizer"] = {"type": "unigram", "vocab_size": 100, "joint": True}
    values["model"] |= {"embedding_size": 16, "hidden_size": 32}
    values["train"] |= {"max_steps": 24, "eval_every": 6, "warmup_steps": 4, "batch_tokens": 600,
                        "keep_checkpoints": 2, "average_last": 2, "tune_length_penalty": "0,1.2"}  # fmt: skip
    values["decode"] = {"beam_size": 2}
    return config_from_dict(values)


@contextmanager
def killed_at(point: str, call: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Raise Killed at the `call`-th time the run reaches `point`:
    "update" (a training update), "validation", "before-rename" / "after-rename" (of a file
    written atomically: its temporary file is complete but not yet in place, or just in place),
    "after-prune" (older step checkpoints deleted, the log and state not yet written),
    "length-penalty" (one alpha's beam search at the end of training)."""
    calls = [0]

    def count() -> bool:
        calls[0] += 1
        return calls[0] == call

    def killing(function: Callable[..., Any], before: bool = True) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before and count():
                raise Killed(point)
            result = function(*args, **kwargs)
            if not before and count():
                raise Killed(point)
            return result

        return wrapper

    with monkeypatch.context() as patch:
        if point == "update":
            patch.setattr(Trainer, "train_update", killing(Trainer.train_update))
        elif point == "validation":
            patch.setattr(seqcli.translation_task.TranslationTask, "validate",
                          killing(seqcli.translation_task.TranslationTask.validate))  # fmt: skip
        elif point in ("before-rename", "after-rename"):
            patch.setattr(seqcli.textio.os, "replace", killing(os.replace, before=point == "before-rename"))
        elif point == "after-prune":
            patch.setattr(seqcli.train, "prune_step_checkpoints",
                          killing(seqcli.train.prune_step_checkpoints, before=False))  # fmt: skip
        elif point == "length-penalty":
            patch.setattr(seqcli.translation_task, "tune_length_penalty",
                          killing(seqcli.translation_task.tune_length_penalty))  # fmt: skip
        else:
            raise ValueError(point)
        yield


def train_and_finish(trainer: Trainer) -> None:
    trainer.run(SilentReporter())
    finish_run(trainer, SilentReporter())


def outcome(run_dir: Path) -> tuple[dict, dict, list[dict], dict, dict]:
    """What a finished run leaves: last and best weights, the log (without its clock), finish.json,
    and the step checkpoints it keeps (name -> weights)."""
    log = [{k: v for k, v in r.items() if k not in ("elapsed_seconds", "target_tokens_per_second")}
           for r in checkpoint.read_log(run_dir)]  # fmt: skip
    finished = json.loads((run_dir / FINISH_FILE).read_text())
    steps = {path.name: load_file(path) for path in step_checkpoints(run_dir)}
    return load_file(run_dir / checkpoint.LAST), load_file(run_dir / checkpoint.BEST), log, finished, steps


@pytest.fixture(scope="module")
def default_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, tuple]:
    config = default_settings(toy_dir)
    run_dir = tmp_path_factory.mktemp("whole-default") / "run"
    train_and_finish(new_trainer(config, run_dir, "cpu"))
    return config, outcome(run_dir)


def kill_and_resume(
    config: Config, run_dir: Path, point: str, call: int, monkeypatch: pytest.MonkeyPatch
) -> bool:
    """Train until killed at the point, then resume to the end; False if the run was killed
    before it saved a state (there is nothing to resume: it starts again)."""
    with killed_at(point, call, monkeypatch), pytest.raises(Killed):
        train_and_finish(new_trainer(config, run_dir, "cpu"))
    if not (run_dir / checkpoint.TRAIN_STATE).exists():
        return False
    train_and_finish(resume_trainer(run_dir, config, "cpu"))
    return True


def assert_same_outcome(run_dir: Path, whole: tuple) -> None:
    last, best, log, finished, steps = outcome(run_dir)
    assert_same_weights(last, whole[0])
    assert_same_weights(best, whole[1])
    assert log == whole[2]
    assert finished == whole[3]
    assert steps.keys() == whole[4].keys()
    for name, weights in steps.items():
        assert_same_weights(weights, whole[4][name])
    assert not list(run_dir.glob(".*.tmp"))  # a resume clears what a kill left half-written


@pytest.mark.parametrize(
    ("point", "call"),
    [
        ("update", 9),  # mid-epoch, between evaluations
        ("validation", 2),  # the second evaluation
        ("before-rename", 12),  # inside the second evaluation's writes
        ("after-rename", 16),  # between two of them
        ("after-prune", 3),  # the first evaluation that deletes an older step checkpoint
        ("validation", 5),  # validating the mean of the last checkpoints, after the loop
        ("length-penalty", 2),  # the second alpha's beam search
    ],
)
def test_a_run_killed_at_a_point_resumes_to_the_uninterrupted_outcome(
    tmp_path: Path, default_run: tuple[Config, tuple], point: str, call: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, whole = default_run
    assert kill_and_resume(config, tmp_path / "run", point, call, monkeypatch)
    assert_same_outcome(tmp_path / "run", whole)


@pytest.mark.parametrize("attention", ["none", "additive", "dot", "general", "hard"])
def test_every_attention_killed_mid_epoch_resumes_to_the_uninterrupted_outcome(
    toy_dir: Path, tmp_path: Path, attention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = default_settings(toy_dir)
    config = replace(
        config,
        model=replace(config.model, attention=attention),
        train=replace(config.train, max_steps=12, tune_length_penalty=""),
    )
    train_and_finish(new_trainer(config, tmp_path / "whole", "cpu"))
    assert kill_and_resume(config, tmp_path / "run", "update", 9, monkeypatch)
    assert_same_outcome(tmp_path / "run", outcome(tmp_path / "whole"))


@pytest.mark.slow
def test_a_run_killed_before_or_after_any_file_write_resumes_to_the_uninterrupted_outcome(
    tmp_path: Path, default_run: tuple[Config, tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, whole = default_run
    resumed = 0
    for call in range(1, 60):
        for point in ("before-rename", "after-rename"):
            run_dir = tmp_path / f"{point}-{call}"
            try:
                if kill_and_resume(config, run_dir, point, call, monkeypatch):
                    assert_same_outcome(run_dir, whole)
                    resumed += 1
            except pytest.fail.Exception:
                break  # no Killed raised: the run has fewer writes than call
    assert resumed > 30


@pytest.mark.slow
@pytest.mark.parametrize("threads", ["1", "2"])
def test_sigkill_at_many_times_of_a_default_settings_run(toy_dir: Path, tmp_path: Path, threads: str) -> None:
    """No config file (the cpu-small preset's dropout, schedule, averaging and tuning), 2,000
    pairs, killed at twelve times from the first state to the end of the length-penalty search."""
    env = {**ENV, "OMP_NUM_THREADS": threads}
    args = ["train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
            "--src-lang", "src", "--tgt-lang", "tgt", "--max-steps", "120", "--eval-every", "20",
            "--seed", "7", "--set", "train.tune_length_penalty=0,1"]  # fmt: skip
    whole = tmp_path / "whole"
    started = time.monotonic()
    run_cli(*args, "--out", str(whole), env=env)
    duration = time.monotonic() - started
    for i in range(12):
        run_dir = tmp_path / f"killed-{i}"
        process = subprocess.Popen([sys.executable, "-m", "seqcli", *args, "--out", str(run_dir)],
                                   stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        while process.poll() is None and not (run_dir / checkpoint.TRAIN_STATE).exists():
            time.sleep(0.01)
        time.sleep(i / 12 * duration * 0.8)
        process.kill()
        process.wait()
        run_cli("train", "--resume", str(run_dir), env=env)
        assert_same_weights(load_file(run_dir / checkpoint.LAST), load_file(whole / checkpoint.LAST))
        assert_same_weights(load_file(run_dir / checkpoint.BEST), load_file(whole / checkpoint.BEST))
        assert (run_dir / FINISH_FILE).read_text() == (whole / FINISH_FILE).read_text()
