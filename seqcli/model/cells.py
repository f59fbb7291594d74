"""Recurrent stacks (vanilla RNN, GRU, LSTM) and the state tuples they pass around.

A recurrent state is always a tuple of (L, B, H) tensors: (h,) for RNN and GRU, (h, c)
for LSTM, so that code selecting or reshaping states never needs to know the cell.
"""

from __future__ import annotations

from torch import Tensor, nn

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
