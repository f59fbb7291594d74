"""The parts a model is built from: its recurrent cells and attentions by config name, and dropout.

A model is built from one `Parts`: `REFERENCE` here, the plain code of this package, or
`seqcli.fast.PARTS`, the same parts with faster kernels where they apply. `train.kernels`
chooses (`seqcli.kernels`); either way the weights, and so the checkpoints, are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from seqcli.model.attention import (
    AdditiveAttention,
    Attention,
    DotAttention,
    FixedContext,
    GeneralAttention,
)
from seqcli.model.cells import CELLS, Cell
from seqcli.model.hard_attention import HardAttention


@dataclass(frozen=True)
class Parts:
    cells: Mapping[str, type[Cell]]  # model.cell -> the cell
    attentions: Mapping[str, type[Attention]]  # model.attention -> the module ("none": fixed context)
    dropout: Callable[[float], nn.Module]  # dropout with one mask per position


ATTENTIONS: dict[str, type[Attention]] = {
    "general": GeneralAttention,
    "dot": DotAttention,
    "additive": AdditiveAttention,
    "hard": HardAttention,
    "none": FixedContext,
}

REFERENCE = Parts(cells=CELLS, attentions=ATTENTIONS, dropout=nn.Dropout)
