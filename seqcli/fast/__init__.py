"""Faster equivalents of parts of the reference model, for `train.kernels = "fast"`.

Each computes what its reference in `seqcli.model` (or `seqcli.loss`) computes, with the same
outputs and gradients (tests/test_fast_paths.py), faster on some hardware, and falls back to
the reference where it does not apply. `PARTS` is the one place that chooses them, from what the
reference parts declare about themselves:
  - cells with a torch fused kernel (`Cell.fused_kernel`: the LSTM and GRU) run padded batches
    on it, the state held over padding (`held_rnn`); cells with a parallel form
    (`Cell.parallel_form`: minGRU and minLSTM) run whole sequences by their scan;
  - attentions with dot-product scores (`Attention.dot_product_scores`) sum the memory's
    gradient once per training pass instead of once per decoder step (`memory_tape`);
  - attentions that mix output distributions (`Attention.mixes_outputs`: hard attention) mix
    them a block of rows at a time, with the gradient written out (`mixture`);
  - dropout draws its mask from uniform numbers on a CPU (`dropout`);
and `fused_sequence_loss` is the label-smoothed cross-entropy with its gradient in one pass.
"""

from seqcli.fast.cross_entropy import fused_sequence_loss
from seqcli.fast.dropout import Dropout
from seqcli.fast.held_rnn import HeldGRU, HeldLSTM
from seqcli.fast.memory_tape import TapedDotAttention, TapedGeneralAttention
from seqcli.fast.mixture import BlockHardAttention
from seqcli.model.attention import Attention, DotAttention, GeneralAttention
from seqcli.model.cells import Cell
from seqcli.model.hard_attention import HardAttention
from seqcli.model.parts import REFERENCE, Parts

HELD: dict[str, type[Cell]] = {"lstm": HeldLSTM, "gru": HeldGRU}  # by Cell.fused_kernel
MIXED: dict[type[Attention], type[Attention]] = {HardAttention: BlockHardAttention}  # by mixes_outputs
TAPED: dict[type[Attention], type[Attention]] = {
    DotAttention: TapedDotAttention,
    GeneralAttention: TapedGeneralAttention,
}


def faster_cell(cell: type[Cell]) -> type[Cell]:
    if cell.fused_kernel is not None:
        return HELD[cell.fused_kernel]
    return cell.parallel_form or cell


def faster_attention(attention: type[Attention]) -> type[Attention]:
    if attention.mixes_outputs:
        return MIXED[attention]
    return TAPED[attention] if attention.dot_product_scores else attention


PARTS = Parts(
    cells={name: faster_cell(cell) for name, cell in REFERENCE.cells.items()},
    attentions={name: faster_attention(attention) for name, attention in REFERENCE.attentions.items()},
    dropout=Dropout,
)

__all__ = ["PARTS", "fused_sequence_loss"]
