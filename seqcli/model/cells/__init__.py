"""Recurrent cells, one module each, and the table that names them for `model.cell`.

A cell (`seqcli.model.cells.base.Cell`) says how to build a stack of its layers, how to run
the stack over padded batches with lengths, how many tensors its state has and how to
initialise it. Encoder, decoder, bridge and search ask only that of it. Adding a cell: one
module here, one line in CELLS, and its name in `seqcli.config.CELLS` (docs/architecture.md).
"""

from seqcli.model.cells.base import Cell, RNNState, top_hidden
from seqcli.model.cells.minimal import MinGRU, MinLSTM
from seqcli.model.cells.torch_rnn import GRU, LSTM, VanillaRNN

CELLS: dict[str, type[Cell]] = {
    "lstm": LSTM,
    "gru": GRU,
    "rnn": VanillaRNN,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}

__all__ = ["CELLS", "Cell", "RNNState", "top_hidden"]
