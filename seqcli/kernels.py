"""`train.kernels`: train with the reference model's code alone, or with seqcli.fast's equivalents.

"reference" builds the model from `seqcli.model`'s own parts and computes the textbook loss
(`seqcli.loss`): the code a reader reads is the code that runs. "fast" (the default) builds it
from `seqcli.fast.PARTS` and computes the fused loss: the same weights, outputs and gradients
up to rounding, faster on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from seqcli import fast
from seqcli.loss import sequence_loss
from seqcli.model.parts import REFERENCE, Parts


@dataclass(frozen=True)
class Kernels:
    parts: Parts  # what the model is built from
    sequence_loss: Callable[[Tensor, Tensor, float], Tensor]  # (logits, targets, label smoothing) -> sum


KERNELS = {
    "reference": Kernels(REFERENCE, sequence_loss),
    "fast": Kernels(fast.PARTS, fast.fused_sequence_loss),
}
