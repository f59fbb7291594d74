"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read the input only.

The GRU's and the LSTM's gates read h_{t-1}, so step t must wait for step t - 1. Drop that and
each step is a linear recurrence h_t = a_t * h_{t-1} + b_t whose a_t and b_t come from x_t
alone:

  minGRU:  z_t = sigmoid(W_z x_t),  h~_t = g(W_h x_t)
           h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
  minLSTM: f_t = sigmoid(W_f x_t),  i_t = sigmoid(W_i x_t),  h~_t = g(W_h x_t)
           f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
           h_t = f'_t * h_{t-1} + i'_t * h~_t

g(x) = x + 0.5 for x >= 0 and sigmoid(x) below keeps h~_t positive, as the paper's log-space
form needs. `step_by_step` computes the recurrence as written, one step after the other (the
reference). Over a whole known sequence, the recurrence unrolls to
h_t = A_t h_0 + sum_{s<=t} (A_t / A_s) b_s with A_t = a_1 ... a_t: cumulative sums and a
log-cum-sum-exp, computed for all t at once (`parallel_scan`), in log space so that long
products of gates neither underflow nor overflow. `--kernels fast` trains with the scan
(`MinGRUScan`, `MinLSTMScan`), `--kernels reference` step by step; tests/test_minimal_cells.py
checks they agree (outputs and every gradient). Each layer runs forward, and backward on each
row reversed within its length; layers are stacked as torch stacks its RNN layers, with
dropout between them.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqcli.model.cells.base import Cell, RNNState


def g(x: Tensor) -> Tensor:
    """The positive activation of h~: x + 0.5 for x >= 0, sigmoid(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without taking the log of a sigmoid."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinimalStack(nn.Module):
    """Layers x directions of one linear map each (all gates and the candidate in one matrix),
    in torch's order: layer-major, forward direction first."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        bidirectional: bool,
        gates: int,
    ):
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            nn.Linear(input_size if layer == 0 else hidden_size * self.directions, (gates + 1) * hidden_size)
            for layer in range(num_layers)
            for _ in range(self.directions)
        )


class MinimalCell(Cell):
    """What minGRU and minLSTM share: the stack, the layer loop, reversal, and both forms."""

    gates: ClassVar[int]

    @classmethod
    def build(
        cls, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
    ) -> nn.Module:
        return MinimalStack(input_size, hidden_size, num_layers, dropout, bidirectional, cls.gates)

    @classmethod
    def coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        """The equations: W x_t (B, T, (gates + 1) H) -> a_t, b_t of h_t = a_t h_{t-1} + b_t, each
        (B, T, H)."""
        raise NotImplementedError

    @classmethod
    def log_coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        """log a_t and log b_t, computed in log space for the scan."""
        raise NotImplementedError

    @classmethod
    def run(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None
    ) -> tuple[Tensor, RNNState]:
        return cls.run_layers(stack, inputs, lengths, state, parallel=False)

    @classmethod
    def run_layers(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None, parallel: bool
    ) -> tuple[Tensor, RNNState]:
        """Every layer and direction over inputs (B, T, I), step by step or by the parallel scan."""
        assert isinstance(stack, MinimalStack)
        batch, steps = inputs.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        lengths = lengths.to(inputs.device)
        real = torch.arange(steps, device=inputs.device)[None, :] < lengths[:, None]  # (B, T)
        reverse = _reversal(lengths, steps)  # (B, T): row-wise reversal within each length
        last = (torch.arange(batch, device=inputs.device), lengths - 1)
        finals: list[Tensor] = []
        layer_input = inputs
        for layer in range(stack.num_layers):
            if layer > 0 and stack.training and stack.dropout > 0:
                layer_input = F.dropout(layer_input, stack.dropout, True)
            outputs = []
            for direction in range(stack.directions):
                index = layer * stack.directions + direction
                start = inputs.new_zeros(batch, stack.hidden_size) if state is None else state[0][index]
                x = layer_input if direction == 0 else _gather_time(layer_input, reverse)
                projected = stack.layers[index](x)  # (B, T, (gates + 1) H)
                if parallel:
                    h = parallel_scan(start, *cls.log_coefficients(projected))  # (B, T, H)
                else:
                    h = step_by_step(start, *cls.coefficients(projected))
                finals.append(h[last])  # (B, H): the state after the row's last real step
                outputs.append(h if direction == 0 else _gather_time(h, reverse))
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, D * H)
        output = layer_input.masked_fill(~real.unsqueeze(-1), 0.0)
        return output, (torch.stack(finals),)  # (L * D, B, H)

    @classmethod
    def initialize(cls, stack: nn.Module, scheme: str, forget_bias: float) -> None:
        """With "xavier": Glorot-uniform matrices (per gate), zero biases; the forget gate of the
        minLSTM starts at forget_bias. "torch" keeps nn.Linear's initialisation."""
        if scheme != "xavier":
            return
        assert isinstance(stack, MinimalStack)
        size = stack.hidden_size
        with torch.no_grad():
            for linear in stack.layers:
                assert isinstance(linear, nn.Linear)
                for block in linear.weight.split(size):  # ((gates + 1) H, in): one block per gate
                    nn.init.xavier_uniform_(block)
                linear.bias.zero_()
                cls.initialize_biases(linear.bias, size, forget_bias)

    @classmethod
    def initialize_biases(cls, bias: Tensor, size: int, forget_bias: float) -> None:
        """Biases other than zero after the "xavier" scheme: none, except the minLSTM's."""


class MinGRU(MinimalCell):
    gates = 1  # z

    @classmethod
    def coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        k, candidate = projected.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return 1 - z, z * g(candidate)

    @classmethod
    def log_coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        k, candidate = projected.chunk(2, dim=-1)
        log_z, log_one_minus_z = -F.softplus(-k), -F.softplus(k)  # log sigmoid(k), log (1 - sigmoid(k))
        return log_one_minus_z, log_z + log_g(candidate)


class MinLSTM(MinimalCell):
    gates = 2  # f, i

    @classmethod
    def coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, candidate = projected.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return f / (f + i), i / (f + i) * g(candidate)

    @classmethod
    def log_coefficients(cls, projected: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, candidate = projected.chunk(3, dim=-1)
        # log f' = log f - log(f + i) = -softplus(d) with d = log i - log f; log i' = -softplus(-d)
        difference = F.softplus(-k_f) - F.softplus(-k_i)
        return -F.softplus(difference), -F.softplus(-difference) + log_g(candidate)

    @classmethod
    def initialize_biases(cls, bias: Tensor, size: int, forget_bias: float) -> None:
        bias[:size] = forget_bias


class ParallelScan:
    """Mixed into a minimal cell: whole known sequences by the parallel scan (`train.kernels = "fast"`)."""

    @classmethod
    def run(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None
    ) -> tuple[Tensor, RNNState]:
        return cls.run_layers(stack, inputs, lengths, state, parallel=True)  # type: ignore[attr-defined]


class MinGRUScan(ParallelScan, MinGRU):
    """minGRU, whole known sequences by the parallel scan."""


class MinLSTMScan(ParallelScan, MinLSTM):
    """minLSTM, whole known sequences by the parallel scan."""


MinGRU.parallel_form = MinGRUScan
MinLSTM.parallel_form = MinLSTMScan


def step_by_step(start: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """h_t = a_t * h_{t-1} + b_t, one step after the other. start (B, H), a and b (B, T, H) -> (B, T, H)."""
    h, states = start, []
    for t in range(a.size(1)):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


def parallel_scan(start: Tensor, log_a: Tensor, log_b: Tensor) -> Tensor:
    """The same h_1..h_T for all t at once: h_t = A_t h_0 + sum_{s<=t} (A_t / A_s) b_s with
    log A_t = sum_{s<=t} log a_s. Every b_s > 0, so the sum is a log-cum-sum-exp; h_0 may have any
    sign, so its term is kept apart."""
    log_cumulative = torch.cumsum(log_a, dim=1)  # log A_t, (B, T, H)
    carried = torch.logcumsumexp(log_b - log_cumulative, dim=1)  # log sum_{s<=t} b_s / A_s
    return torch.exp(log_cumulative) * start.unsqueeze(1) + torch.exp(log_cumulative + carried)


def _reversal(lengths: Tensor, steps: int) -> Tensor:
    """(B, T) time indices that reverse each row's first `length` steps and keep its padding in
    place: reading a row through it twice gives the row back."""
    t = torch.arange(steps, device=lengths.device)[None, :]  # (1, T)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """x (B, T, F) read at time indices (B, T)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))
