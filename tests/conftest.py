"""Shared fixtures: small generated corpora and one tiny trained run for the CLI tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from cli_helpers import THREADS, run_cli

from seqcli.textio import read_lines
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.toydata import ToySplitSizes, write_toy_corpus

torch.set_num_threads(THREADS)  # training in the test process: this worker's share of the cores

SHARED_DATA = Path(os.environ.get("SEQCLI_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    write_toy_corpus(out, ToySplitSizes(train=4000, valid=100, test=200), seed=7)
    return out


TINY_TRAIN_ARGS = (
    "--preset", "gpu-base",  # seqcli's defaults under the sizes below
    "--src-lang", "src", "--tgt-lang", "tgt",
    "--vocab-size", "120", "--separate",
    "--embedding-size", "32", "--hidden-size", "64",
    "--encoder-layers", "1", "--decoder-layers", "1",
    "--dropout", "0.0", "--lr", "0.005", "--batch-tokens", "1500",
    "--label-smoothing", "0.0",
)  # fmt: skip


@pytest.fixture(scope="session")
def trained_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small attention model trained on the dates task through the CLI (about 20 s)."""
    run_dir = tmp_path_factory.mktemp("runs") / "dates"
    run_cli(
        "train",
        "--train", str(toy_dir / "train"),
        "--valid", str(toy_dir / "valid"),
        *TINY_TRAIN_ARGS,
        "--max-steps", "400", "--eval-every", "200",
        "--out", str(run_dir),
    )  # fmt: skip
    return run_dir


def write_side_tokenizers(train: Path, out: Path, vocab_size: int) -> tuple[Path, Path]:
    """A unigram SentencePiece model per side of the training corpus (TRAIN.src, TRAIN.tgt),
    saved as out/src.spm and out/tgt.spm: runs given them (--src-spm, --tgt-spm) see the same
    pieces and train no tokenizer of their own."""
    paths = (out / "src.spm", out / "tgt.spm")
    for side, path in zip(("src", "tgt"), paths, strict=True):
        lines = read_lines(train.with_name(f"{train.name}.{side}"))
        Tokenizer(train_sentencepiece(lines, TokenizerSpec("unigram", vocab_size))).save(path)
    return paths
