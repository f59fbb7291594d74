"""Run directories: data-only checkpoints, checks on load, atomic writes."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from seqcli import checkpoint
from seqcli.errors import RunDirError
from seqcli.textio import atomic_open
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece


class _Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture()
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained_run, target)
    return target


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_planted_pickle_is_refused_and_nothing_runs(run_copy: Path, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "code-ran"
    with open(run_copy / checkpoint.BEST, "wb") as handle:
        if how == "pickle":
            pickle.dump({"weights": _Payload(marker)}, handle)
        else:
            torch.save({"weights": _Payload(marker)}, handle)
    result = run_cli("translate", str(run_copy), input_text="5. Mai 1999\n", check=False)
    assert result.returncode == 1
    assert "best.safetensors: not a seqcli safetensors file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_swapped_tokenizer_is_detected(run_copy: Path) -> None:
    other = Tokenizer(train_sentencepiece(["some other text entirely"] * 20, TokenizerSpec("unigram", 30)))
    other.save(run_copy / checkpoint.TGT_SPM)
    with pytest.raises(
        RunDirError, match="tgt.spm: does not match the tokenizer the weights were trained with"
    ):
        checkpoint.load_run(run_copy)


@pytest.mark.parametrize("missing", [checkpoint.CONFIG_FILE, checkpoint.SRC_SPM, checkpoint.BEST])
def test_an_incomplete_run_dir_names_what_is_missing(run_copy: Path, missing: str) -> None:
    (run_copy / missing).unlink()
    with pytest.raises(RunDirError, match=missing.replace(".", r"\.")):
        checkpoint.load_run(run_copy)


def test_a_run_from_an_incompatible_version_is_refused(run_copy: Path) -> None:
    config = (run_copy / checkpoint.CONFIG_FILE).read_text()
    (run_copy / checkpoint.CONFIG_FILE).write_text(config + "\n[future]\nfeature = 1\n")
    with pytest.raises(RunDirError, match="config.toml: future: unknown section"):
        checkpoint.load_run(run_copy)


def test_weights_that_do_not_fit_the_config_are_refused(run_copy: Path) -> None:
    config = (run_copy / checkpoint.CONFIG_FILE).read_text().replace("hidden_size = 64", "hidden_size = 32")
    (run_copy / checkpoint.CONFIG_FILE).write_text(config)
    result = run_cli("translate", str(run_copy), input_text="x\n", check=False)
    assert result.returncode == 1 and "weights do not fit the configured model" in result.stderr


def test_a_failed_write_leaves_the_previous_checkpoint_intact(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {name: (run_copy / name).read_bytes() for name in (checkpoint.BEST, checkpoint.LAST)}
    run = checkpoint.load_run(run_copy)
    from seqcli.model.seq2seq import Seq2Seq

    model = Seq2Seq(run.config.model, run.src_tokenizer.vocab_size, run.tgt_tokenizer.vocab_size)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    for name in (checkpoint.BEST, checkpoint.LAST):
        with pytest.raises(OSError, match="No space left"):
            checkpoint.save_weights(run_copy / name, model, (run.src_tokenizer, run.tgt_tokenizer), {})
    assert {name: (run_copy / name).read_bytes() for name in before} == before
    assert not [p for p in run_copy.iterdir() if p.name.endswith(".tmp")]


def test_non_finite_weights_are_never_saved(run_copy: Path) -> None:
    run = checkpoint.load_run(run_copy)
    from seqcli.model.seq2seq import Seq2Seq

    model = Seq2Seq(run.config.model, run.src_tokenizer.vocab_size, run.tgt_tokenizer.vocab_size)
    with torch.no_grad():
        model.decoder.output.bias[0] = float("nan")
    before = (run_copy / checkpoint.BEST).read_bytes()
    with pytest.raises(RunDirError, match="non-finite"):
        checkpoint.save_weights(run_copy / checkpoint.BEST, model, (run.src_tokenizer, run.tgt_tokenizer), {})
    assert (run_copy / checkpoint.BEST).read_bytes() == before


def test_atomic_open_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half of the new")  # type: ignore[arg-type]
        raise RuntimeError("crash in the middle of a write")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
