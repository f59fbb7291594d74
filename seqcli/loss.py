"""Label-smoothed cross-entropy over target pieces, padding ignored."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from seqcli.tokenizer import PAD_ID


def sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    """Summed loss over real target positions. logits (B, T, V), tgt_out (B, T) -> scalar."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        tgt_out.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
