"""Data parallelism: batch shards worked out by hand, and 2 Gloo processes under torchrun against 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from conftest import write_side_tokenizers
from safetensors.torch import load_file

from seqcli import distributed
from seqcli.distributed import World, _interleave, shard_updates, torchrun_job, translate_chunks_in_shares
from seqcli.toydata import ToySplitSizes, write_toy_corpus

# Weights after 12 updates of 2 processes against 1 process accumulating 2 batches: the two
# differ only in the order in which float32 gradients are summed (measured: 8e-7; a wrong
# effective batch, 1 process without accumulation, gives 0.19).
WEIGHT_TOLERANCE = 1e-5


def test_ranks_take_every_world_size_th_batch_and_drop_an_incomplete_update() -> None:
    batches = [[10 * b] for b in range(7)]  # batch b holds example 10 * b
    rank0 = shard_updates(batches, World(rank=0, size=2), accum_steps=1)
    rank1 = shard_updates(batches, World(rank=1, size=2), accum_steps=1)
    assert rank0 == [[[0]], [[20]], [[40]]]
    assert rank1 == [[[10]], [[30]], [[50]]]  # batch 6 would leave rank 0 alone: dropped
    assert shard_updates(batches, World(), accum_steps=1) == [[b] for b in batches]


def test_two_ranks_cover_what_one_process_accumulates() -> None:
    batches = [[b] for b in range(11)]
    one = shard_updates(batches, World(), accum_steps=4)
    two = [shard_updates(batches, World(rank=r, size=2), accum_steps=2) for r in range(2)]
    assert len(one) == len(two[0]) == len(two[1]) == 2
    for update, (on_rank0, on_rank1) in enumerate(zip(two[0], two[1], strict=True)):
        assert sorted(on_rank0 + on_rank1) == sorted(one[update])


def test_lines_dealt_out_to_three_ranks_come_back_in_order() -> None:
    for n_lines in range(8):
        lines = [f"line {i}" for i in range(n_lines)]
        shares = [lines[rank::3] for rank in range(3)]  # as rank 0 deals a round out
        assert list(_interleave(shares)) == lines


def test_a_world_of_one_translates_each_chunk_in_one_piece() -> None:
    calls: list[list[str]] = []

    def shout(lines: list[str]) -> list[str]:
        calls.append(lines)
        return [line.upper() for line in lines]

    chunks = [["a", "b"], ["c"]]
    assert list(translate_chunks_in_shares(shout, chunks, World())) == [["A", "B"], ["C"]]
    assert calls == [["a", "b"], ["c"]]


def test_a_torchrun_job_is_left_once_on_every_normal_exit_and_never_after_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    left: list[str] = []
    monkeypatch.setattr(distributed, "leave_torchrun_job", lambda: left.append("left"))

    def work(early: bool) -> str:
        with torchrun_job("cpu") as device:
            if early:
                return device
            return device + "!"

    assert work(early=True) == "cpu" and left == ["left"]
    assert work(early=False) == "cpu!" and left == ["left", "left"]
    with pytest.raises(ValueError), torchrun_job("cpu"):
        raise ValueError("a failed rank: torchrun ends the others")
    assert left == ["left", "left"]


def test_a_world_of_one_needs_no_process_group() -> None:
    world = World()
    assert world.is_main and not world.is_distributed
    assert world.broadcast("x") == "x"
    assert world.from_main(lambda: 3) == 3
    assert world.sum(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dates corpus and fixed tokenizers, so that both runs see the same pieces."""
    root = tmp_path_factory.mktemp("dist")
    write_toy_corpus(root, ToySplitSizes(train=500, valid=20, test=60), seed=11)
    write_side_tokenizers(root / "train", root, vocab_size=80)
    return root


def train_args(task: Path, out: Path, accum_steps: int) -> list[str]:
    return [
        "train", "--preset", "gpu-base",
        "--train", str(task / "train"), "--valid", str(task / "valid"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--separate",
        "--src-spm", str(task / "src.spm"), "--tgt-spm", str(task / "tgt.spm"),
        "--embedding-size", "16", "--hidden-size", "32", "--encoder-layers", "1", "--decoder-layers", "1",
        "--dropout", "0.0", "--lr", "0.01", "--batch-tokens", "300", "--label-smoothing", "0.0",
        "--max-steps", "12", "--eval-every", "6", "--accum-steps", str(accum_steps),
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


def torchrun(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node 2 -m seqcli ARGS`, as a user would launch it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*command, "-m", "seqcli", *args], input=input_text, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow  # two torchrun processes beside one (about 30 s)
def test_two_gloo_processes_train_and_translate_like_one(
    tiny_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 processes x 1 batch per update = 1 process x 2 accumulated batches, update by update."""
    # One thread per process, as torchrun gives its workers: on a busy 2-core machine a
    # 2-thread process spends most of its time with one thread waiting for the other.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    single, double = tmp_path / "single", tmp_path / "double"
    run_cli(*train_args(tiny_task, single, accum_steps=2))
    torchrun(*train_args(tiny_task, double, accum_steps=1))

    one, two = load_file(single / "last.safetensors"), load_file(double / "last.safetensors")
    assert one.keys() == two.keys()
    largest = max(float((one[name] - two[name]).abs().max()) for name in one)
    assert largest < WEIGHT_TOLERANCE, f"largest weight difference {largest:.2e}"

    def log(run: Path) -> list[dict[str, float]]:
        return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]

    # Rank 0 alone validated and wrote: one record per evaluation, with the all-rank loss.
    assert [r["step"] for r in log(double)] == [r["step"] for r in log(single)] == [6, 12]
    for a, b in zip(log(single), log(double), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-3)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], abs=1e-3)

    source = (tiny_task / "test.src").read_text() + "\nMay 5, 1999\n"  # an empty line stays empty
    alone = run_cli("translate", str(double), "--beam-size", "2", "--device", "cpu", input_text=source)
    shared = torchrun("translate", str(double), "--beam-size", "2", "--device", "cpu", input_text=source)
    assert alone.stdout.count("\n") == source.count("\n")
    assert shared.stdout == alone.stdout
