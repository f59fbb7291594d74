"""The vanilla RNN, the GRU and the LSTM, computed by torch's own recurrent modules.

One formula each per step t (x_t the input, h_{t-1} the last state):
  vanilla (Elman 1990):  h_t = tanh(W x_t + U h_{t-1} + b)
  GRU (Cho et al. 2014): z, r = sigmoid(...); h~ = tanh(W x_t + r * (U h_{t-1}));
                         h_t = (1 - z) * h~ + z * h_{t-1}
  LSTM (Hochreiter and Schmidhuber 1997, with a forget gate, Gers et al. 2000):
                         i, f, o = sigmoid(...); g = tanh(...); c_t = f * c_{t-1} + i * g;
                         h_t = o * tanh(c_t)
The LSTM's additive cell update c_t = f * c_{t-1} + ... is what lets a gradient travel back
over many steps when f stays near 1; the vanilla cell multiplies by U and tanh' at every step.

Rows of mixed lengths run as packed sequences, so padding never enters the recurrence.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqcli.model.cells.base import Cell, RNNState


def to_state(raw: Tensor | tuple[Tensor, ...]) -> RNNState:
    """What torch's recurrent modules return, as a state tuple."""
    return tuple(raw) if isinstance(raw, tuple) else (raw,)


def to_raw(state: RNNState) -> Tensor | tuple[Tensor, Tensor]:
    """A state tuple as torch's recurrent modules take it: h, or (h, c)."""
    return (state[0], state[1]) if len(state) == 2 else state[0]


class TorchCell(Cell):
    """A cell whose stack is one of torch's batch-first recurrent modules."""

    module: ClassVar[type[nn.LSTM] | type[nn.GRU] | type[nn.RNN]]
    gates: ClassVar[int]  # matrices stacked in each of torch's weight tensors

    @classmethod
    def build(
        cls, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
    ) -> nn.Module:
        return cls.module(
            input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )

    @classmethod
    def run(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None
    ) -> tuple[Tensor, RNNState]:
        raw = None if state is None else to_raw(state)
        if lengths is None:
            outputs, final = stack(inputs, raw)
            return outputs, to_state(final)
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final = stack(packed, raw)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
        return outputs, to_state(final)

    @classmethod
    def initialize(cls, stack: nn.Module, scheme: str, forget_bias: float) -> None:
        """Glorot-uniform gate matrices and zero biases ("xavier"; "torch" keeps torch's
        uniform(+-1/sqrt(H))). torch stacks a layer's gates in one matrix (4H x in for an LSTM:
        input, forget, cell, output), so the bound is computed for one gate's (H x in) matrix,
        as if each gate were its own linear layer."""
        if scheme != "xavier":
            return
        with torch.no_grad():
            for name, parameter in stack.named_parameters():
                if name.startswith("weight"):
                    fan_out, fan_in = parameter.size(0) // cls.gates, parameter.size(1)
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    parameter.uniform_(-bound, bound)
                else:
                    parameter.zero_()
            cls.initialize_biases(stack, forget_bias)

    @classmethod
    def initialize_biases(cls, stack: nn.Module, forget_bias: float) -> None:
        """Biases other than zero after the "xavier" scheme: none, except the LSTM's."""


class LSTM(TorchCell):
    module = nn.LSTM
    gates = 4
    n_states = 2
    fused_kernel = "lstm"

    @classmethod
    def initialize_biases(cls, stack: nn.Module, forget_bias: float) -> None:
        """The forget gates start at forget_bias (Jozefowicz et al. 2015), set in bias_ih only:
        the gate sees bias_ih + bias_hh."""
        assert isinstance(stack, nn.LSTM)
        size = stack.hidden_size
        for name, parameter in stack.named_parameters():
            if name.startswith("bias_ih"):
                parameter[size : 2 * size] = forget_bias


class GRU(TorchCell):
    module = nn.GRU
    gates = 3
    fused_kernel = "gru"


class VanillaRNN(TorchCell):
    module = nn.RNN
    gates = 1
