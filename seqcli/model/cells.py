"""Recurrent stacks (vanilla RNN, GRU, LSTM) and the state tuples they pass around.

The cells are torch's, one formula each per step t (x_t the input, h_{t-1} the last state):
  vanilla (Elman 1990):  h_t = tanh(W x_t + U h_{t-1} + b)
  GRU (Cho et al. 2014): z, r = sigmoid(...); h~ = tanh(W x_t + r * (U h_{t-1}));
                         h_t = (1 - z) * h~ + z * h_{t-1}
  LSTM (Hochreiter and Schmidhuber 1997, with a forget gate, Gers et al. 2000):
                         i, f, o = sigmoid(...); g = tanh(...); c_t = f * c_{t-1} + i * g;
                         h_t = o * tanh(c_t)
The LSTM's additive cell update c_t = f * c_{t-1} + ... is what lets a gradient travel back
over many steps when f stays near 1; the vanilla cell multiplies by U and tanh' at every step.

A recurrent state is always a tuple of (L, B, H) tensors: (h,) for RNN and GRU, (h, c)
for LSTM, so that code selecting or reshaping states never needs to know the cell.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

RNN_CLASSES: dict[str, type[nn.LSTM] | type[nn.GRU] | type[nn.RNN]] = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn": nn.RNN,
}

RNNState = tuple[Tensor, ...]


def make_rnn(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
) -> nn.RNNBase:
    """A batch-first stack; dropout applies between layers only."""
    return RNN_CLASSES[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
    )


def to_state(raw: Tensor | tuple[Tensor, Tensor]) -> RNNState:
    """What torch's RNN modules return, as a state tuple."""
    return tuple(raw) if isinstance(raw, tuple) else (raw,)


def to_raw(state: RNNState) -> Tensor | tuple[Tensor, Tensor]:
    """A state tuple as torch's RNN modules take it."""
    return (state[0], state[1]) if len(state) == 2 else state[0]


def top_hidden(state: RNNState) -> Tensor:
    """The last layer's hidden output h. (L, B, H) -> (B, H)"""
    return state[0][-1]


def glorot_rnn_init_(rnn: nn.RNNBase, forget_bias: float) -> None:
    """Glorot-uniform gate matrices, zero biases, LSTM forget gates biased to forget_bias.

    torch stores the gates of a layer stacked in one matrix (4H x in for an LSTM: input,
    forget, cell, output), so the bound is computed for one gate's (H x in) matrix, not the
    stack, as if each gate were its own linear layer. The forget bias goes to bias_ih only:
    the gate sees bias_ih + bias_hh.
    """
    gates = rnn.get_parameter("weight_hh_l0").size(0) // rnn.hidden_size
    with torch.no_grad():
        for name, parameter in rnn.named_parameters():
            if name.startswith("weight"):
                fan_out, fan_in = parameter.size(0) // gates, parameter.size(1)
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                parameter.uniform_(-bound, bound)
            else:
                parameter.zero_()
                if isinstance(rnn, nn.LSTM) and name.startswith("bias_ih"):
                    parameter[rnn.hidden_size : 2 * rnn.hidden_size] = forget_bias


def initialize_rnns_(model: nn.Module, scheme: str, forget_bias: float) -> None:
    """Apply model.rnn_init to every RNN of model: "torch" leaves them as built."""
    if scheme == "xavier":
        for module in model.modules():
            if isinstance(module, nn.RNNBase):
                glorot_rnn_init_(module, forget_bias)


def run_packed(
    rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor, state: RNNState | None = None
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """Run a batch-first RNN over padded inputs (B, T, I) of the given lengths (B,) as packed
    sequences, so padding never enters the recurrence: outputs (B, T, H * D), zero at padded
    positions, and each sequence's final state in torch's (L * D, B, H) layout (h, or (h, c)
    for an LSTM)."""
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, final = rnn(packed, None if state is None else to_raw(state))
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
    return outputs, final
