"""The recurrent stack over padded sequences on torch's fused CPU kernels ("held" padding).

`seqcli.model.cells.run_packed` runs an RNN over sequences of mixed lengths as packed
sequences, which torch runs step by step on a CPU. The held path gives the same outputs,
final states and gradients with torch's fused dense kernels: padding enters the recurrence
but, through one extra input feature, saturates the gates so that the state is held as it
was (tests/test_fast_paths.py checks it against packed sequences).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqcli.fast.dropout import dropout
from seqcli.model.cells import RNNState
from seqcli.model.cells.torch_rnn import GRU, LSTM, TorchCell

# A gate pre-activation this far from zero saturates the sigmoid to exactly 0 or 1 (in
# float32 and bfloat16 alike), whatever the rest of the pre-activation adds.
HOLD = 1e4
ROWS_PER_GROUP = 32  # the held path runs sorted rows in groups of at least this many ...
MAX_GROUPS = 8  # ... and in no more groups than this


def can_hold(rnn: nn.RNNBase, inputs: Tensor, state: RNNState | None) -> bool:
    """Whether `run_held` gives the packed result here and is faster: LSTM and GRU stacks on
    a CPU (quantized modules, vanilla RNNs and other devices keep packed sequences), except an
    LSTM's backward direction from a given start (its h drifts over the leading padding)."""
    if inputs.device.type != "cpu" or type(rnn) not in (nn.LSTM, nn.GRU):
        return False
    if isinstance(rnn, nn.LSTM) and rnn.proj_size > 0:
        return False
    return state is None or not (rnn.bidirectional and isinstance(rnn, nn.LSTM))


class HeldRunner(TorchCell):
    """A torch-backed cell whose padded batches run held where `can_hold` says so."""

    @classmethod
    def run(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None
    ) -> tuple[Tensor, RNNState]:
        if lengths is not None and isinstance(stack, nn.RNNBase) and can_hold(stack, inputs, state):
            return run_held(stack, inputs, lengths, state)
        return super().run(stack, inputs, lengths, state)


class HeldLSTM(HeldRunner, LSTM):
    """The LSTM, its padded batches held."""


class HeldGRU(HeldRunner, GRU):
    """The GRU, its padded batches held."""


def run_held(
    rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor, state: RNNState | None = None
) -> tuple[Tensor, RNNState]:
    """The packed run's outputs and final state through torch's fused dense kernels.

    Each layer gets one more input feature, 1 at padded positions and 0 at real ones, whose
    weights hold the state: an LSTM's forget gate goes to 1 and its input gate to 0 (the cell
    keeps its value), a GRU's update gate to 1 (the hidden state keeps its value). Padding
    after a sequence then leaves its final state as the sequence left it, and the backward
    direction, which reads the padding first, stays at its zero start until the sequence
    begins. Only an LSTM's forward h drifts over the padding (the output gate still moves), so
    it is read from the outputs at the last real position. Rows run sorted by length in a few
    groups, each padded only to its own longest, to keep padded work small.
    """
    lengths = lengths.cpu()
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
    return output, final


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
