"""Recurrent stacks (vanilla RNN, GRU, LSTM) and the state tuples they pass around.

A recurrent state is always a tuple of (L, B, H) tensors: (h,) for RNN and GRU, (h, c)
for LSTM, so that code selecting or reshaping states never needs to know the cell.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqcli.model.dropout import dropout

RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

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
    gates = rnn.weight_hh_l0.size(0) // rnn.hidden_size
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


# A gate pre-activation this far from zero saturates the sigmoid to exactly 0 or 1 (in
# float32 and bfloat16 alike), whatever the rest of the pre-activation adds.
HOLD = 1e4
ROWS_PER_GROUP = 32  # the held path runs sorted rows in groups of at least this many ...
MAX_GROUPS = 8  # ... and in no more groups than this


def run_rnn(rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor, state: RNNState | None = None):
    """Run a batch-first RNN over padded inputs (B, T, I) of the given lengths, as if over
    packed sequences: outputs (B, T, H * D), zero at padded positions, and each sequence's
    final state in torch's (L * D, B, H) layout (h, or (h, c) for an LSTM).

    On CPU, LSTM and GRU stacks take the held path below, about twice as fast as torch's
    packed sequences there for mixed lengths (those run step by step); elsewhere, and for
    vanilla RNNs and quantized modules, packed sequences.
    """
    if runs_held(rnn, inputs, state):
        return _run_held(rnn, inputs, lengths.cpu(), state)
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, final = rnn(packed, None if state is None else to_raw(state))
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
    return outputs, final


def runs_held(rnn: nn.RNNBase, inputs: Tensor, state: RNNState | None) -> bool:
    """Whether run_rnn takes the held path here. It gives the packed result only where an
    LSTM's backward direction starts from zeros (its h drifts over the leading padding from
    any other start), so those take packed sequences."""
    if inputs.device.type != "cpu" or type(rnn) not in (nn.LSTM, nn.GRU):
        return False
    if isinstance(rnn, nn.LSTM) and rnn.proj_size > 0:
        return False
    return state is None or not (rnn.bidirectional and isinstance(rnn, nn.LSTM))


def _run_held(rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor, state: RNNState | None):
    """Padded sequences through torch's fused dense kernels, with the same results as packed.

    Each layer gets one more input feature, 1 at padded positions and 0 at real ones, whose
    weights hold the state: an LSTM's forget gate goes to 1 and its input gate to 0 (the cell
    keeps its value), a GRU's update gate to 1 (the hidden state keeps its value). Padding
    after a sequence then leaves its final state as the sequence left it, and the backward
    direction, which reads the padding first, stays at its zero start until the sequence
    begins. Only an LSTM's forward h drifts over the padding (the output gate still moves), so
    it is read from the outputs at the last real position. Rows run sorted by length in a few
    groups, each padded only to its own longest, to keep padded work small.
    """
    batch = inputs.size(0)
    weights = _held_weights(rnn)
    order = torch.argsort(lengths, descending=True)
    groups = max(1, min(MAX_GROUPS, batch // ROWS_PER_GROUP))
    outputs, finals = [], []
    for rows in torch.tensor_split(order, groups):
        group_lengths = lengths[rows]
        longest = int(group_lengths[0])
        group_state = None if state is None else tuple(t[:, rows] for t in state)
        out, final = _held_group(rnn, weights, inputs[rows, :longest], group_lengths, group_state)
        outputs.append(F.pad(out, (0, 0, 0, inputs.size(1) - longest)))
        finals.append(final)
    restore = torch.argsort(order)
    output = torch.cat(outputs)[restore]
    final = tuple(torch.cat([f[i] for f in finals], dim=1)[:, restore] for i in range(len(finals[0])))
    return output, to_raw(final)


def _held_weights(rnn: nn.RNNBase) -> list[list[Tensor]]:
    """Per layer, torch's flat weight list for one layer (both directions) with the holding
    column appended to each input matrix."""
    size, lstm = rnn.hidden_size, isinstance(rnn, nn.LSTM)
    layers = []
    for layer in range(rnn.num_layers):
        weights = []
        for suffix in ("", "_reverse")[: 2 if rnn.bidirectional else 1]:
            w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
            hold = w_ih.new_zeros(w_ih.size(0), 1)
            hold[size : 2 * size] = HOLD  # LSTM forget gate, GRU update gate
            if lstm:
                hold[:size] = -HOLD  # LSTM input gate
            weights.append(torch.cat([w_ih, hold], dim=1))
            rest = ("weight_hh", "bias_ih", "bias_hh")
            weights += [getattr(rnn, f"{kind}_l{layer}{suffix}") for kind in rest]
        layers.append(weights)
    return layers


def _held_group(
    rnn: nn.RNNBase, weights: list[list[Tensor]], inputs: Tensor, lengths: Tensor, state: RNNState | None
) -> tuple[Tensor, RNNState]:
    """One group of rows sorted by length, padded to the first: outputs and final state."""
    batch, steps, _ = inputs.shape
    directions, lstm = (2 if rnn.bidirectional else 1), isinstance(rnn, nn.LSTM)
    padded = torch.arange(steps)[None, :] >= lengths[:, None]  # (B, T), on the CPU like all of this path
    hold = padded.unsqueeze(-1).to(inputs.dtype)
    if state is None:
        zeros = inputs.new_zeros(rnn.num_layers * directions, batch, rnn.hidden_size)
        state = (zeros, zeros) if lstm else (zeros,)
    last = (torch.arange(batch), lengths - 1)
    layer_input, finals = inputs, list[RNNState]()
    for layer, layer_weights in enumerate(weights):
        if layer > 0 and rnn.training and rnn.dropout > 0:
            layer_input = dropout(layer_input, rnn.dropout, training=True)
        x = torch.cat([layer_input, hold], dim=-1)
        start = tuple(t[layer * directions : (layer + 1) * directions] for t in state)
        args = (layer_weights, True, 1, 0.0, rnn.training, rnn.bidirectional, True)
        if lstm:
            layer_input, h, c = torch.lstm(x, start, *args)
            h = torch.cat([layer_input[last][None, :, : rnn.hidden_size], h[1:]])
            finals.append((h, c))
        else:
            layer_input, h = torch.gru(x, start[0], *args)
            finals.append((h,))
    output = layer_input.masked_fill(padded.unsqueeze(-1), 0.0)
    return output, tuple(torch.cat([f[i] for f in finals]) for i in range(len(finals[0])))
