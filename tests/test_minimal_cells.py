"""minGRU and minLSTM: the parallel scan equals the step-by-step equations, with padding, lengths,
directions, layers and a given start; decoding and resume as for every cell."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import SilentReporter

from seqcli.checkpoint import read_log
from seqcli.config import Config, ModelConfig, config_from_dict
from seqcli.model.cells.minimal import (
    MinGRU,
    MinGRUScan,
    MinLSTM,
    MinLSTMScan,
    g,
    log_g,
    parallel_scan,
    step_by_step,
)
from seqcli.model.seq2seq import Seq2Seq
from seqcli.search import beam_search, greedy_search
from seqcli.tasks import new_trainer, resume_trainer
from seqcli.vocab import BOS_ID, EOS_ID

PAIRS = [(MinGRU, MinGRUScan), (MinLSTM, MinLSTMScan)]


def test_g_is_positive_continuous_and_its_log_is_log_g() -> None:
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert bool((g(x) > 0).all())
    assert torch.allclose(g(torch.tensor([-1e-9, 0.0, 1e-9])), torch.full((3,), 0.5), atol=1e-8)
    assert torch.allclose(log_g(x), torch.log(g(x)))


def test_the_scan_of_a_linear_recurrence_is_the_recurrence() -> None:
    torch.manual_seed(0)
    start = torch.randn(3, 5, dtype=torch.float64)  # any sign
    log_a = -torch.rand(3, 40, 5, dtype=torch.float64) * 3  # gates in (0, 1]
    log_b = torch.randn(3, 40, 5, dtype=torch.float64)  # b > 0
    assert torch.allclose(parallel_scan(start, log_a, log_b), step_by_step(start, log_a.exp(), log_b.exp()))


@pytest.mark.parametrize(("reference", "scan"), PAIRS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("given_start", [False, True])
def test_the_scan_equals_the_equations_outputs_and_every_gradient(
    reference: type, scan: type, bidirectional: bool, given_start: bool
) -> None:
    torch.manual_seed(0)
    stack = reference.build(6, 8, 2, 0.0, bidirectional)
    reference.initialize(stack, "xavier", 1.0)
    lengths = torch.tensor([9, 1, 5, 9, 3])
    inputs = torch.randn(5, 11, 6, requires_grad=True)  # padded past the longest too
    directions = 2 if bidirectional else 1
    start = (torch.randn(2 * directions, 5, 8),) if given_start else None
    expected, expected_final = reference.run(stack, inputs, lengths, start)
    outputs, final = scan.run(stack, inputs, lengths, start)
    assert outputs.shape == (5, 11, 8 * directions) and final[0].shape == (2 * directions, 5, 8)
    padded = torch.arange(11)[None, :] >= lengths[:, None]
    assert outputs[padded].abs().max() == 0
    torch.testing.assert_close(outputs, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final[0], expected_final[0], atol=1e-5, rtol=1e-5)
    weights = [torch.randn_like(expected), torch.randn_like(expected_final[0])]

    def gradients(out: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, ...]:
        loss = (out * weights[0]).sum() + (last * weights[1]).sum()
        return torch.autograd.grad(loss, [inputs, *stack.parameters()])

    for ours, theirs in zip(
        gradients(outputs, final[0]), gradients(expected, expected_final[0]), strict=True
    ):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", [MinGRU, MinLSTM])
def test_a_padded_row_runs_as_it_does_alone(cell: type) -> None:
    """The backward direction starts at each row's last real step, not at the padding."""
    torch.manual_seed(0)
    stack = cell.build(4, 6, 1, 0.0, True)
    inputs = torch.randn(2, 7, 4)
    together, final = cell.run(stack, inputs, torch.tensor([7, 3]), None)
    alone, alone_final = cell.run(stack, inputs[1:, :3], None, None)
    torch.testing.assert_close(together[1, :3], alone[0])
    torch.testing.assert_close(final[0][:, 1], alone_final[0][:, 0])


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_beam_one_equals_greedy(cell: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, embedding_size=8, hidden_size=12, encoder_layers=2, decoder_layers=2,
                         input_feeding=False, dropout=0.0)  # fmt: skip
    model = Seq2Seq(config, 20, 20).eval()
    src = torch.randint(4, 20, (4, 6))
    lengths = torch.tensor([6, 4, 5, 2])
    limits = torch.full((4,), 9)
    with torch.no_grad():
        state, memory = model.encode(src, lengths)
        greedy = greedy_search(model.step, state, memory, BOS_ID, EOS_ID, limits)
        beam = beam_search(model.step, state, memory, BOS_ID, EOS_ID, limits, beam_size=1)
    assert [h[0].tokens for h in greedy] == [h[0].tokens for h in beam]


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_training_lowers_the_loss_and_resumes_exactly_with_either_kernels(
    toy_dir: Path, tmp_path: Path, kernels: str
) -> None:
    def config(max_steps: int) -> Config:
        return config_from_dict({
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 100, "joint": True},
            "model": {"cell": "mingru", "embedding_size": 16, "hidden_size": 32, "encoder_layers": 2,
                      "decoder_layers": 1, "input_feeding": False, "dropout": 0.1},
            "train": {"batch_tokens": 800, "eval_every": 5, "max_steps": max_steps, "kernels": kernels,
                      "learning_rate": 0.01},
        })  # fmt: skip

    whole = new_trainer(config(10), tmp_path / "whole", "cpu")
    whole.run(SilentReporter())
    losses = [record["train_loss"] for record in read_log(tmp_path / "whole")]
    assert losses[1] < losses[0]
    new_trainer(config(5), tmp_path / "split", "cpu").run(SilentReporter())
    resumed = resume_trainer(tmp_path / "split", config(10), "cpu")
    resumed.run(SilentReporter())
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
