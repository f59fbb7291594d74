"""The thread policy (torch threads from the cores other processes leave free, --threads) and
the time budget (--max-minutes kept when updates or validations are slow)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import ENV, THREADS, USER_ENV, WORKERS, run_cli
from test_training import SilentReporter, tiny_config

from seqcli import threads
from seqcli.budget import TimeBudget
from seqcli.tasks import new_trainer


@pytest.fixture
def busy_core() -> Iterator[None]:
    """Another process keeping a core busy, as a second training or a browser would."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield
    spinner.kill()
    spinner.wait()


def test_threads_left_are_the_usable_cores_other_processes_do_not_keep_busy() -> None:
    assert threads.threads_left(usable=2, busy=1.0) == 1
    assert threads.threads_left(usable=2, busy=0.2) == 2  # background chatter takes no core
    assert threads.threads_left(usable=8, busy=2.3) == 6
    assert threads.threads_left(usable=2, busy=5.0) == 1  # never fewer than one


def test_busy_cores_are_counted_without_this_process() -> None:
    start = threads.CpuSample(wall=0.0, machine_busy=10.0, own=3.0)
    end = threads.CpuSample(wall=2.0, machine_busy=14.0, own=5.0)  # 4 s busy, 2 s of them ours
    assert threads.busy_cores_since(start, end) == pytest.approx(1.0)


def test_usable_cores_follow_the_affinity() -> None:
    assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))


def _timings_threads(stderr: str) -> int:
    found = re.search(r"threads (\d+)", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.mark.skipif(threads.usable_cores() < 2, reason="one usable core: nothing to leave free")
def test_a_core_kept_busy_by_another_process_is_left_to_it(trained_run: Path, busy_core: None) -> None:
    """The policy, read from torch in a fresh process started the way a user starts seqcli."""
    code = (
        "from seqcli import threads; threads.sample_cpu_use(); choice = threads.use_threads(None); "
        "import torch; print(choice.reason); print(torch.__config__.parallel_info())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=USER_ENV)
    found = re.search(r"at::get_num_threads\(\) : (\d+)", result.stdout)
    assert found and int(found.group(1)) < threads.usable_cores(), result.stdout
    assert "kept busy by other processes" in result.stdout
    translated = run_cli("translate", str(trained_run), "--timings", input_text="3 May 2001\n", env=USER_ENV)
    assert _timings_threads(translated.stderr) < threads.usable_cores()


def test_a_thread_count_the_user_gives_is_kept(trained_run: Path, busy_core: None) -> None:
    env = {**USER_ENV, "OMP_NUM_THREADS": "2"}
    result = run_cli("translate", str(trained_run), "--timings", input_text="3 May 2001\n", env=env)
    assert _timings_threads(result.stderr) == 2
    result = run_cli("translate", str(trained_run), "--timings", "--threads", "3", input_text="x\n", env=env)
    assert _timings_threads(result.stderr) == 3  # the flag before the environment


def test_train_serve_and_embed_take_threads(toy_dir: Path, trained_run: Path, tmp_path: Path) -> None:
    trained = run_cli(
        "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--vocab-size", "100", "--embedding-size", "8",
        "--hidden-size", "16", "--max-steps", "2", "--eval-every", "2", "--threads", "2",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert "threads 2 (as asked)" in trained.stderr
    assert "threads = 2" in (tmp_path / "run" / "config.toml").read_text()
    log = tmp_path / "serve.log"
    with open(log, "w") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "seqcli", "serve", str(trained_run), "--port", "0", "--threads", "1"],
            stderr=handle,
            env=ENV,
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "threads 1 (as asked)" in log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=60)
    refused = run_cli("embed", str(trained_run), "--threads", "-1", input_text="x\n", check=False)
    assert refused.returncode == 2 and "--threads" in refused.stderr


def test_each_seqcli_process_a_test_starts_gets_its_share_of_the_cores() -> None:
    assert ENV["OMP_NUM_THREADS"] == str(THREADS)
    assert THREADS * WORKERS <= max(threads.usable_cores(), WORKERS)


def test_the_budget_keeps_room_for_the_last_validation_and_the_end_of_training() -> None:
    budget = TimeBudget(seconds=100.0, finish_in_validations=2.0)
    budget.count_step(5.0)
    budget.validation_seconds = 10.0  # reserve: the last validation and two more
    assert budget.allows_step(elapsed=65.0)  # 65 + 5 + 30 = 100
    assert not budget.allows_step(elapsed=65.1)
    assert TimeBudget(seconds=0.0).allows_step(elapsed=1e9)  # no limit


class _SlowSteps:
    """Updates and validations that take a known time, as on a machine whose cores are taken."""

    def __init__(self, trainer: object, update_seconds: float, validation_seconds: float):
        task = trainer.task  # type: ignore[attr-defined]
        self.batch_loss, self.validate = task.batch_loss, task.validate
        self.update_seconds, self.validation_seconds = update_seconds, validation_seconds
        task.batch_loss, task.validate = self.slow_batch_loss, self.slow_validate

    def slow_batch_loss(self, *args: object) -> object:
        time.sleep(self.update_seconds)
        return self.batch_loss(*args)

    def slow_validate(self) -> dict[str, float]:
        time.sleep(self.validation_seconds)
        return self.validate()


def test_max_minutes_is_kept_when_updates_and_validations_are_slow(toy_dir: Path, tmp_path: Path) -> None:
    budget_seconds = 4.0
    config = tiny_config(toy_dir, max_minutes=budget_seconds / 60, eval_every=3, max_steps=10_000)
    trainer = new_trainer(config, tmp_path / "run", "cpu")  # type: ignore[arg-type]
    _SlowSteps(trainer, update_seconds=0.3, validation_seconds=0.8)
    notes: list[str] = []
    reporter = SilentReporter()
    reporter.on_note = notes.append  # type: ignore[method-assign]
    started = time.monotonic()
    summary = trainer.run(reporter)
    took = time.monotonic() - started
    assert summary.stop_reason == "max_minutes"
    assert took <= 1.1 * budget_seconds, took  # setup (the tokenizer) is not counted: still within
    assert any(n.startswith("--max-minutes: stopping at step") for n in notes), notes
