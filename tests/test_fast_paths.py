"""seqcli.fast against the reference (outputs, gradients), parallel scheduled sampling, int8 decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from test_training import SilentReporter, tiny_config

from seqcli import fast
from seqcli import translate as translate_module
from seqcli.config import ModelConfig
from seqcli.corpus import Example, bucket_batches, collate, random_batches
from seqcli.device import has_native_bf16
from seqcli.errors import UsageError
from seqcli.fast import mixture
from seqcli.fast.cross_entropy import fused_sequence_loss
from seqcli.fast.dropout import dropout
from seqcli.fast.held_rnn import HeldGRU, HeldLSTM, can_hold
from seqcli.kernels import KERNELS
from seqcli.loss import sequence_loss
from seqcli.model.cells.torch_rnn import GRU, LSTM
from seqcli.model.hard_attention import MixtureOutput
from seqcli.model.parts import REFERENCE
from seqcli.model.seq2seq import Seq2Seq
from seqcli.tasks import new_trainer
from seqcli.teacher import mix_predictions
from seqcli.tokenizer import PAD_ID
from seqcli.translate import Translator


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_fused_loss_matches_torch_cross_entropy(eps: float) -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 9, 60, requires_grad=True)
    target = torch.randint(1, 60, (4, 9))
    target[1, 4:] = PAD_ID
    target[3, 1:] = PAD_ID
    ours = fused_sequence_loss(logits, target, eps)
    (ours_grad,) = torch.autograd.grad(ours * 2.5, logits)
    reference = sequence_loss(logits, target, eps)  # the textbook loss, torch's cross-entropy
    (reference_grad,) = torch.autograd.grad(reference * 2.5, logits)
    assert torch.allclose(ours, reference, rtol=1e-5)
    assert torch.allclose(ours_grad, reference_grad, atol=1e-6)
    assert ours_grad[3, 1:].abs().max() == 0  # padding gets no gradient


@pytest.mark.parametrize("block_elements", [50, 1 << 18])  # a row or two per block, and all at once
def test_blockwise_mixture_matches_the_mixture_as_written(
    block_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hard attention's mixture log p(v) = logsumexp_j (log alpha_j + log_softmax(z_j)_v), block by
    block with its hand-written gradient, against the reference read-out: values and gradients
    in float64, padding positions (alpha = 0) included, with a leading (N, T) shape."""
    monkeypatch.setattr(mixture, "BLOCK_ELEMENTS", block_elements)
    torch.manual_seed(0)
    z = torch.randn(3, 4, 5, 7, dtype=torch.float64, requires_grad=True)  # (N, T, S, V)
    scores = torch.randn(3, 4, 5, dtype=torch.float64)
    scores[0, :, 3:] = float("-inf")  # padding: two positions of sentence 0
    log_weights = torch.log_softmax(scores, dim=-1).requires_grad_()
    feed = torch.zeros(3, 4, 2, dtype=torch.float64)
    outputs = [
        kind(log_weights, z, feed, lambda x: x) for kind in (MixtureOutput, mixture.BlockMixtureOutput)
    ]
    expected, ours = (output.logits for output in outputs)
    assert torch.allclose(ours, expected, atol=1e-12)
    weights = torch.randn_like(expected)
    grads = [torch.autograd.grad((out * weights).sum(), (z, log_weights)) for out in (expected, ours)]
    for theirs, mine in zip(*grads, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-12)
    assert grads[1][0][0, :, 3:].abs().max() == 0  # nothing flows into padding


@pytest.mark.parametrize(("reference", "held"), [(LSTM, HeldLSTM), (GRU, HeldGRU)])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("rows", [5, 150])  # one group, and several groups of sorted rows
@pytest.mark.parametrize("zero_start", [True, False])
def test_held_rnn_matches_packed_sequences(reference: type, held: type, bidirectional: bool, rows: int,
                                           zero_start: bool) -> None:  # fmt: skip
    """The held cell on CPU (except an LSTM's backward direction from a given start) against
    the reference cell's packed sequences: outputs, final states, gradients."""
    torch.manual_seed(0)
    rnn = reference.build(6, 8, 2, 0.0, bidirectional)
    lengths = torch.randint(1, 13, (rows,))
    inputs = torch.randn(rows, 14, 6, requires_grad=True)  # padded past the longest too
    directions = 2 if bidirectional else 1
    start = tuple(torch.randn(2 * directions, rows, 8) for _ in range(reference.n_states))
    if zero_start:
        start = tuple(torch.zeros_like(t) for t in start)
    given = None if zero_start else start
    expected, expected_final = reference.run(rnn, inputs, lengths, start)
    assert can_hold(rnn, inputs, given) == (zero_start or reference is GRU or not bidirectional)
    outputs, final = held.run(rnn, inputs, lengths, given)
    weights = [torch.randn_like(expected)] + [torch.randn_like(t) for t in expected_final]

    def gradients(out: torch.Tensor, fin: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        loss = sum((t * w).sum() for t, w in zip((out, *fin), weights, strict=True))
        return torch.autograd.grad(loss, [inputs, *rnn.parameters()])

    assert torch.allclose(outputs, expected, atol=1e-6)
    assert outputs[torch.arange(14)[None, :] >= lengths[:, None]].abs().max() == 0  # zero at padding
    for ours, theirs in zip(final, expected_final, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)
    for ours, theirs in zip(gradients(outputs, final), gradients(expected, expected_final), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_fast_parts_are_those_the_reference_parts_declare_a_faster_kernel_for() -> None:
    for name, cell in REFERENCE.cells.items():
        declared = cell.fused_kernel is not None or cell.parallel_form is not None
        assert (fast.PARTS.cells[name] is not cell) == declared, name
        assert issubclass(fast.PARTS.cells[name], cell)
    for name, attention in REFERENCE.attentions.items():
        declared = attention.dot_product_scores or attention.mixes_outputs
        assert (fast.PARTS.attentions[name] is not attention) == declared, name
        assert issubclass(fast.PARTS.attentions[name], attention)


def test_cpu_dropout_keeps_one_minus_p_and_rescales() -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, y.detach())  # the gradient goes through the same mask
    assert dropout(x, 0.3, training=False) is x


def test_mix_predictions_shifts_guesses_into_the_next_input() -> None:
    tgt_in = torch.tensor([[2, 10, 11, 12], [2, 20, 21, 0]])
    guesses = torch.tensor([[30, 31, 32, 33], [40, 41, 42, 43]])
    use_gold = torch.tensor([[False, True, False, False], [False, False, True, False]])
    mixed = mix_predictions(tgt_in, guesses, use_gold)
    # position 0 stays BOS; a non-gold position t takes the guess made at t - 1
    assert mixed.tolist() == [[2, 10, 31, 32], [2, 40, 21, 42]]


def test_parallel_sampling_trains_on_the_first_pass_guesses(toy_dir: Path) -> None:
    config = tiny_config(
        toy_dir, teacher_forcing="constant", tf_start=0.0, scheduled_sampling="parallel", label_smoothing=0.0
    )
    trainer = new_trainer(config, toy_dir / "unused-run", "cpu")
    trainer.reporter = SilentReporter()
    calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    forward = trainer.train_model.forward

    def spy(src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor, use_gold=None, real=None):  # type: ignore[no-untyped-def]
        output = forward(src, lengths, tgt_in, use_gold, real)
        calls.append((tgt_in.clone(), use_gold))
        return output

    trainer.model.eval()  # no dropout: the guesses below are reproducible
    examples = list(trainer.task.train_items)
    batch = [examples[i] for i in bucket_batches(examples, 800, seed=0)[0]]
    tensors = collate(batch)
    gold = tensors.tgt_in
    with torch.no_grad():
        guesses = trainer.model(tensors.src, tensors.src_lengths, gold).logits.argmax(-1)
    trainer.train_model.forward = spy  # type: ignore[method-assign]
    trainer.train_update([batch], 0)
    (first, first_gold), (fed, use_gold) = calls  # a guessing pass, then one on the mixed inputs
    assert torch.equal(first, gold) and first_gold is None
    assert use_gold is None  # both are teacher-forced passes: the sequential sampling loop is not used
    assert torch.equal(fed[:, 0], gold[:, 0])
    assert torch.equal(fed[:, 1:], guesses[:, :-1])  # probability 0: every input is a guess
    assert not torch.equal(fed, gold)


def test_parallel_sampling_learns(toy_dir: Path) -> None:
    config = tiny_config(toy_dir, teacher_forcing="linear", tf_start=1.0, tf_slope=0.01, tf_min=0.5,
                         scheduled_sampling="parallel", learning_rate=0.005)  # fmt: skip
    trainer = new_trainer(config, toy_dir / "unused-run", "cpu")
    examples = list(trainer.task.train_items)
    batches = bucket_batches(examples, 800, seed=0)
    losses = []
    for step, indices in enumerate(batches[:60]):
        loss, tokens = trainer.train_update([[examples[i] for i in indices]], step)
        losses.append(loss / tokens)
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10  # mixed inputs: learns, if slower


@pytest.mark.parametrize(
    ("cell", "attention", "input_feeding"),
    [
        ("lstm", "general", True),
        ("lstm", "dot", True),
        ("gru", "additive", True),
        ("rnn", "dot", False),
        ("lstm", "none", False),
    ],
)
def test_logits_for_real_positions_only_match_the_padded_pass(
    cell: str, attention: str, input_feeding: bool
) -> None:
    """The fast model given the real positions (the RNN skips padding on held kernels, dot and
    general attention sum the memory's gradient once per pass) against the reference model's
    padded pass: same logits and gradients, restricted to the real positions."""
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, attention=attention, input_feeding=input_feeding, embedding_size=16,
                         hidden_size=16, dropout=0.0)  # fmt: skip
    reference = Seq2Seq(config, 40, 40)
    faster = Seq2Seq(config, 40, 40, fast.PARTS)
    faster.load_state_dict(reference.state_dict())
    lengths = [(3, 9), (7, 1), (1, 4), (9, 9), (4, 2), (6, 7)]
    examples = [Example([5 + i % 30 for i in range(s)], [7 + i % 30 for i in range(t)]) for s, t in lengths]
    batch = collate(examples)
    real = batch.tgt_out != PAD_ID

    def gradients(model: Seq2Seq, logits: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weights = [p for p in model.parameters() if p.requires_grad]
        return torch.autograd.grad(logits.square().sum(), weights, allow_unused=True)

    full = reference(batch.src, batch.src_lengths, batch.tgt_in).logits
    full_grads = gradients(reference, full[real])
    packed = faster(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits
    packed_grads = gradients(faster, packed)
    assert packed.shape == (int(real.sum()), 40)
    assert torch.allclose(packed, full[real], atol=1e-5)
    for ours, theirs in zip(packed_grads, full_grads, strict=True):  # encoder and attention too
        assert (ours is None) == (theirs is None)
        assert ours is None or torch.allclose(ours, theirs, atol=1e-4)


def test_random_batching_trains(toy_dir: Path) -> None:
    config = tiny_config(toy_dir, batching="random", batch_tokens=600, learning_rate=0.005)
    trainer = new_trainer(config, toy_dir / "unused-run", "cpu")
    examples = list(trainer.task.train_items)
    losses = []
    for step, indices in enumerate(random_batches(examples, 600, seed=0)[:60]):
        lengths = {len(examples[i].tgt) for i in indices}
        assert len(lengths) > 1  # mixed lengths in every batch
        loss, tokens = trainer.train_update([[examples[i] for i in indices]], step)
        losses.append(loss / tokens)
    assert sum(losses[-10:]) / 10 < 0.75 * sum(losses[:10]) / 10


def test_int8_quantized_translation_agrees_with_float(trained_run: Path, toy_dir: Path) -> None:
    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:60]
    text = "\n".join(lines) + "\n"
    plain = run_cli("translate", str(trained_run), "--device", "cpu", input_text=text)
    quantized = run_cli("translate", str(trained_run), "--device", "cpu", "--quantize", "--timings",
                        input_text=text)  # fmt: skip
    a, b = plain.stdout.splitlines(), quantized.stdout.splitlines()
    assert len(b) == len(lines)
    assert sum(x == y for x, y in zip(a, b, strict=True)) >= 0.8 * len(lines)
    assert "seqcli translate: 60 lines, generation" in quantized.stderr


def test_quantize_refuses_an_ensemble(trained_run: Path) -> None:
    result = run_cli(
        "translate", str(trained_run), str(trained_run), "--quantize", input_text="x\n", check=False
    )
    assert result.returncode == 2
    assert "--quantize" in result.stderr


@pytest.mark.skipif(
    not has_native_bf16(torch.device("cpu")), reason="this CPU has no bf16 units (AVX-512 BF16 or AMX)"
)
def test_bf16_translation_agrees_with_float(trained_run: Path, toy_dir: Path) -> None:
    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:60]
    text = "\n".join(lines) + "\n"
    plain = run_cli("translate", str(trained_run), "--device", "cpu", "--beam-size", "3", input_text=text)
    bf16 = run_cli("translate", str(trained_run), "--device", "cpu", "--beam-size", "3", "--bf16",
                   input_text=text)  # fmt: skip
    a, b = plain.stdout.splitlines(), bf16.stdout.splitlines()
    assert len(b) == len(lines)
    assert sum(x == y for x, y in zip(a, b, strict=True)) >= 0.8 * len(lines)


def test_bf16_search_is_refused_without_bf16_units(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translator = Translator.from_run_dir(trained_run, {}, torch.device("cpu"))
    monkeypatch.setattr(translate_module, "has_native_bf16", lambda device: False)
    with pytest.raises(UsageError, match="--bf16: cpu has no bfloat16 matrix units"):
        translator.use_bf16()
    assert not translator.bf16
    result = run_cli("translate", str(trained_run), "--bf16", "--quantize", input_text="x\n", check=False)
    assert result.returncode == 2
    assert "--bf16: not with --quantize" in result.stderr


@pytest.mark.parametrize(
    ("cell", "attention", "input_feeding"),
    [
        ("lstm", "general", True), ("gru", "additive", True), ("lstm", "dot", False), ("gru", "none", False),
        ("lstm", "hard", False),
    ],
)  # fmt: skip
def test_the_same_training_through_fast_paths_and_reference_code_gives_equal_losses(
    cell: str, attention: str, input_feeding: bool
) -> None:
    """A few Adam updates on mixed-length batches: the model built from seqcli.fast's parts with
    the fused loss, and the reference model with the textbook loss, lose the same."""
    from seqcli.optim import make_optimizer

    torch.manual_seed(0)
    config = ModelConfig(cell=cell, attention=attention, input_feeding=input_feeding, embedding_size=16,
                         hidden_size=16, dropout=0.0)  # fmt: skip
    models = {name: Seq2Seq(config, 40, 40, kernels.parts) for name, kernels in KERNELS.items()}
    models["reference"].load_state_dict(models["fast"].state_dict())
    lengths = [(3, 9), (7, 1), (1, 4), (9, 9), (4, 2), (6, 7), (2, 5), (8, 3)]
    examples = [Example([5 + (i * s) % 30 for i in range(s)], [7 + (i * t) % 30 for i in range(t)])
                for s, t in lengths]  # fmt: skip
    losses: dict[str, list[float]] = {name: [] for name in KERNELS}
    for name, model in models.items():
        optimizer = make_optimizer(model, 0.01)
        for step in range(5):
            batch = collate(examples[step % 3 : step % 3 + 5])
            real = batch.tgt_out != PAD_ID
            logits = model(batch.src, batch.src_lengths, batch.tgt_in, real=real).logits  # (N, V)
            loss = KERNELS[name].sequence_loss(logits, batch.tgt_out[real], 0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[name].append(loss.item())
    assert losses["fast"] == pytest.approx(losses["reference"], rel=1e-4)
    assert losses["fast"][-1] < losses["fast"][0]  # it learned something: the comparison means something
