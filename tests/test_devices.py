"""Every device path on every device present: the CPU always, a CUDA GPU where there is one.

Run `pytest -m cuda` on a machine with a GPU to check the CUDA paths; here they run on the CPU.
Models are tiny, so each test takes a few seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from test_training import SilentReporter

from seqcli import checkpoint
from seqcli.config import Config, DecodeConfig, ModelConfig, config_from_dict
from seqcli.corpus import Batch, Example, collate
from seqcli.device import has_native_bf16
from seqcli.loss import sequence_loss
from seqcli.model.seq2seq import Seq2Seq
from seqcli.search import beam_search, greedy_search
from seqcli.tasks import new_trainer, resume_trainer
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.translate import Translator
from seqcli.vocab import BOS_ID, EOS_ID, PAD_ID

pytestmark = pytest.mark.cuda

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
VOCAB = 80
# (source length, target length) of a batch with long, short and equal lengths.
LENGTHS = [(3, 9), (7, 1), (1, 4), (9, 9), (4, 2), (6, 7)]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> Iterator[torch.device]:
    """The device, with TF32 off on CUDA: cuDNN's RNNs use it by default on GPUs that have
    it, and its 10-bit mantissa would hide real differences behind 1e-3 errors."""
    if request.param == "cpu":
        yield torch.device("cpu")
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def tolerance(device: torch.device) -> float:
    """Absolute tolerance of two float32 computations that should agree: on a GPU the kernels
    (cuDNN's whole-sequence RNN against its steps, split-K products) sum in other orders."""
    return 1e-5 if device.type == "cpu" else 1e-4


def tiny_model(device: torch.device, **model: object) -> Seq2Seq:
    torch.manual_seed(0)
    config = ModelConfig(**{"embedding_size": 16, "hidden_size": 16, "dropout": 0.0, **model})  # type: ignore[arg-type]
    return Seq2Seq(config, VOCAB, VOCAB).to(device)


def tiny_batch(device: torch.device) -> Batch:
    examples = [Example([5 + i % 30 for i in range(s)], [7 + i % 30 for i in range(t)]) for s, t in LENGTHS]
    return collate(examples).to(device)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("attention", ["general", "dot", "additive", "hard", "none"])
def test_forward_and_backward_run_on_the_device(device: torch.device, cell: str, attention: str) -> None:
    model = tiny_model(device, cell=cell, attention=attention)
    batch = tiny_batch(device)
    logits = model(batch.src, batch.src_lengths, batch.tgt_in).logits
    assert logits.shape == (len(LENGTHS), batch.tgt_in.shape[1], VOCAB)
    assert logits.device.type == device.type and logits.isfinite().all()
    sequence_loss(logits, batch.tgt_out, 0.1).backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    # Hard attention's scores learn from REINFORCE only, so not every weight gets a gradient here.
    assert len(grads) >= len(list(model.parameters())) // 2
    assert all(g.device.type == device.type and g.isfinite().all() for g in grads.values())
    assert any(g.abs().max() > 0 for name, g in grads.items() if name.startswith("encoder"))


@pytest.mark.parametrize(
    ("cell", "attention", "input_feeding"),
    [
        ("lstm", "general", True),
        ("lstm", "dot", True),
        ("gru", "additive", True),
        ("lstm", "additive", False),
        ("gru", "general", False),
        ("rnn", "dot", False),
        ("lstm", "none", False),
    ],
)
def test_training_pass_on_real_positions_matches_the_padded_pass(
    device: torch.device, cell: str, attention: str, input_feeding: bool
) -> None:
    """The fast pass (logits for real positions only) against the plain padded pass:
    the same logits there, and the same gradient of the summed loss for every weight."""
    model = tiny_model(device, cell=cell, attention=attention, input_feeding=input_feeding)
    batch = tiny_batch(device)
    real = batch.tgt_out != PAD_ID  # (B, T)
    weights = [p for p in model.parameters() if p.requires_grad]
    padded = model(batch.src, batch.src_lengths, batch.tgt_in).logits  # (B, T, V)
    padded_grads = torch.autograd.grad(sequence_loss(padded, batch.tgt_out, 0.0), weights, allow_unused=True)
    fast = model(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits  # (N, V)
    fast_grads = torch.autograd.grad(
        sequence_loss(fast, batch.tgt_out[real], 0.0), weights, allow_unused=True
    )
    atol = tolerance(device)
    assert fast.shape == (int(real.sum()), VOCAB)
    assert torch.allclose(fast, padded[real], atol=atol)
    for ours, theirs in zip(fast_grads, padded_grads, strict=True):
        assert (ours is None) == (theirs is None)
        assert ours is None or torch.allclose(ours, theirs, atol=10 * atol)


@pytest.fixture(scope="module")
def tokenizer(toy_dir: Path) -> Tokenizer:
    lines = (toy_dir / "train.src").read_text(encoding="utf-8").splitlines()[:1000]
    return Tokenizer(train_sentencepiece(lines, TokenizerSpec(vocab_size=VOCAB)))


def untrained_translator(device: torch.device, tokenizer: Tokenizer) -> Translator:
    model = tiny_model(device, attention="general").eval()
    return Translator(model, tokenizer, tokenizer, DecodeConfig(length_penalty=0.0), device)


@torch.inference_mode()
def test_beam_size_one_equals_greedy(device: torch.device, tokenizer: Tokenizer) -> None:
    model = tiny_model(device, attention="general").eval()
    batch = tiny_batch(device)
    max_lengths = torch.full((len(LENGTHS),), 12, device=device)
    state, memory = model.encode(batch.src, batch.src_lengths)
    greedy = greedy_search(model.step, state, memory, BOS_ID, EOS_ID, max_lengths)
    state, memory = model.encode(batch.src, batch.src_lengths)
    beam = beam_search(
        model.step, state, memory, BOS_ID, EOS_ID, max_lengths, beam_size=1, n_best=1, alpha=0.0
    )
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]
    assert [h[0].score for h in beam] == pytest.approx([h[0].score for h in greedy], abs=1e-4)
    assert any(len(h[0].tokens) > 1 for h in greedy)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_a_sentence_alone_equals_it_within_a_batch(
    device: torch.device, tokenizer: Tokenizer, toy_dir: Path, beam_size: int
) -> None:
    translator = untrained_translator(device, tokenizer)
    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:12]
    ids = tokenizer.encode(lines)
    decode = replace(translator.decode, beam_size=beam_size, n_best=min(2, beam_size))
    together = translator.search_batch(ids, decode)  # one batch, padded to the longest
    for sentence, in_batch in zip(ids, together, strict=True):
        (alone,) = translator.search_batch([sentence], decode)
        assert [h.tokens for h in alone] == [h.tokens for h in in_batch]
        assert [h.score for h in alone] == pytest.approx([h.score for h in in_batch], abs=1e-4)
    assert len({tuple(h[0].tokens) for h in together}) > 1  # the sources do steer the output


def test_bf16_autocast_trains_and_translates(
    device: torch.device, tokenizer: Tokenizer, toy_dir: Path
) -> None:
    if not has_native_bf16(device):
        pytest.skip(f"{device} has no bfloat16 matrix units (needs a GPU with bf16, or AVX-512 BF16 or AMX)")
    model = tiny_model(device, attention="general")
    batch = tiny_batch(device)
    real = batch.tgt_out != PAD_ID
    float_loss = sequence_loss(model(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits,
                               batch.tgt_out[real], 0.0)  # fmt: skip
    with torch.autocast(device.type, dtype=torch.bfloat16):
        logits = model(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits
    loss = sequence_loss(logits, batch.tgt_out[real], 0.0)
    loss.backward()
    # bf16 keeps 8 bits of mantissa: the loss agrees to about 1%, the weights stay float32.
    assert loss.item() == pytest.approx(float_loss.item(), rel=0.03)
    assert all(p.grad is None or (p.grad.dtype == torch.float32 and p.grad.isfinite().all())
               for p in model.parameters())  # fmt: skip
    translator = untrained_translator(device, tokenizer)
    translator.use_bf16()
    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:8]
    assert len(translator.translate_lines(lines, beam_size=3)) == len(lines)


def resume_config(toy_dir: Path, max_steps: int) -> Config:
    # Dropout and scheduled sampling make the run depend on every random-number state.
    return config_from_dict(
        {
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 100},
            "model": {"embedding_size": 16, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1,
                      "dropout": 0.2},
            "train": {"batch_tokens": 600, "max_steps": max_steps, "eval_every": 6, "seed": 5,
                      "teacher_forcing": "linear", "tf_slope": 0.02},
        }
    )  # fmt: skip


def test_resume_on_the_device_continues_the_run(device: torch.device, toy_dir: Path, tmp_path: Path) -> None:
    whole = new_trainer(resume_config(toy_dir, 12), tmp_path / "whole", str(device))
    whole.run(SilentReporter())
    first = new_trainer(resume_config(toy_dir, 6), tmp_path / "parts", str(device))
    first.run(SilentReporter())
    resumed = resume_trainer(tmp_path / "parts", resume_config(toy_dir, 12), str(device))
    assert resumed.loop.step == 6
    resumed.run(SilentReporter())
    expected, found = whole.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == found.keys()
    for name in expected:
        if device.type == "cpu":
            assert torch.equal(expected[name], found[name]), name
        else:
            # CUDA's backward kernels for embeddings and index_add sum with atomics in no fixed
            # order, so two runs differ in the last bits. Adam turns that into weight changes
            # far below 1e-5; a state restored wrongly (optimizer moments, RNG) moves them ~lr.
            assert torch.allclose(expected[name], found[name], atol=1e-5), name


@pytest.fixture(scope="module")
def small_task(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred dates pairs and one fixed tokenizer, so that both runs see the same pieces."""
    root = tmp_path_factory.mktemp("pairs")
    for split, count in (("train", 400), ("valid", 20)):
        for side in ("src", "tgt"):
            lines = (toy_dir / f"{split}.{side}").read_text(encoding="utf-8").splitlines()[:count]
            (root / f"{split}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    both = (root / "train.src").read_text().splitlines() + (root / "train.tgt").read_text().splitlines()
    Tokenizer(train_sentencepiece(both, TokenizerSpec(vocab_size=80))).save(root / "joint.spm")
    return root


def small_train_args(task: Path, out: Path, accum_steps: int, device: str) -> list[str]:
    return [
        "train", "--train", str(task / "train"), "--valid", str(task / "valid"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--src-spm", str(task / "joint.spm"),
        "--embedding-size", "16", "--hidden-size", "32", "--encoder-layers", "1", "--decoder-layers", "1",
        "--dropout", "0.0", "--lr", "0.01", "--batch-tokens", "300", "--label-smoothing", "0.0",
        "--max-steps", "6", "--eval-every", "6", "--accum-steps", str(accum_steps),
        "--device", device, "--out", str(out),
    ]  # fmt: skip


@pytest.mark.slow  # two processes start torch and seqcli: ~40 s on 2 busy CPU cores
def test_two_processes_share_one_device(device: torch.device, small_task: Path, tmp_path: Path) -> None:
    """torchrun with 2 processes on one device against 1 process accumulating 2 batches:
    the same updates, up to the order in which float32 gradients are summed."""
    name = "cpu" if device.type == "cpu" else "cuda:0"  # both ranks on the same device
    run_cli(*small_train_args(small_task, tmp_path / "one", accum_steps=2, device=name))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [
            *launcher,
            "-m",
            "seqcli",
            *small_train_args(small_task, tmp_path / "two", accum_steps=1, device=name),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if device.type == "cuda" and "Duplicate GPU" in result.stderr:
        # seqcli's CUDA jobs use NCCL, which allows one rank per GPU.
        pytest.xfail("NCCL refuses two ranks on one GPU")
    assert result.returncode == 0, result.stderr[-3000:]

    def records(run: str) -> list[dict[str, float]]:
        return [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert [r["step"] for r in records("one")] == [r["step"] for r in records("two")] == [6]
    assert records("two")[0]["train_loss"] == pytest.approx(records("one")[0]["train_loss"], abs=1e-3)
    assert records("two")[0]["valid_loss"] == pytest.approx(records("one")[0]["valid_loss"], abs=1e-3)
    one, two = (checkpoint.load_run(tmp_path / run, checkpoint.LAST).tensors for run in ("one", "two"))
    assert one.keys() == two.keys()
    largest = max(float((one[name] - two[name]).abs().max()) for name in one)
    assert largest < 1e-5, f"largest weight difference {largest:.2e}"  # a wrong batch: ~0.1
