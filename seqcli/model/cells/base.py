"""What every recurrent cell provides: build a stack of layers, run it over padded batches, initialise it.

A recurrent state is a tuple of tensors, each (L * D, B, H) for L layers and D directions: (h,)
for most cells, (h, c) for the LSTM. `Cell.n_states` says which, so code that selects, joins or
bridges states never needs to know the cell.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

RNNState = tuple[Tensor, ...]


class Cell:
    """A kind of recurrent cell. Its stack is an nn.Module that the encoder or decoder keeps as
    `rnn` and only `run` calls, so a cell may build one of torch's modules or one of its own.

    Shapes: inputs (B, T, I); lengths (B,) or None when every row is T long; each state tensor
    (L * D, B, H); outputs (B, T, D * H), zero past each row's length.
    """

    n_states: ClassVar[int] = 1  # tensors in a state: 1, (h,); 2, (h, c)
    # The name of torch's fused kernel that computes this cell ("lstm", "gru"), for the faster
    # runner of seqcli.fast; None when there is none.
    fused_kernel: ClassVar[str | None] = None
    # The same cell running whole known sequences in parallel (a scan), where its gates do not
    # read the previous state; `train.kernels = "fast"` builds with it.
    parallel_form: ClassVar[type[Cell] | None] = None

    @classmethod
    def build(
        cls, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
    ) -> nn.Module:
        """A stack of num_layers layers of hidden_size per direction; dropout between layers only."""
        raise NotImplementedError

    @classmethod
    def run(
        cls, stack: nn.Module, inputs: Tensor, lengths: Tensor | None, state: RNNState | None
    ) -> tuple[Tensor, RNNState]:
        """The stack over inputs from state (None: zeros) -> outputs (B, T, D * H) and each
        row's final state, taken at its last real position (its length)."""
        raise NotImplementedError

    @classmethod
    def initialize(cls, stack: nn.Module, scheme: str, forget_bias: float) -> None:
        """model.rnn_init: "torch" leaves the stack as built; "xavier" draws Glorot-uniform
        input and recurrent matrices with zero biases (forget_bias: the LSTM's forget gate)."""


def top_hidden(state: RNNState) -> Tensor:
    """The last layer's hidden output h. (L, B, H) -> (B, H)"""
    return state[0][-1]
