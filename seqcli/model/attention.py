"""Attention: score a query against encoder states and mix them into a context vector.

Every soft module maps (query (B, T, H), keys (B, S, Hk), values (B, S, H), mask (B, S)) to
(context (B, T, H), weights (B, T, S)). Keys are projected once per batch by
`project_keys` and passed in, so nothing is cached on the module. Padding positions
(mask False) get exactly zero weight. Hard attention lives in hard_attention.py: it also
returns the position it chose, which its REINFORCE training term needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqcli.model.hard_attention import HardAttention


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension, ignoring positions where mask is False.

    scores (B, T, S), mask (B, S) -> weights (B, T, S)
    """
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)


class DotAttention(nn.Module):
    """Luong dot: score(q, h_s) = q . h_s; needs query and value sizes to match."""

    uses_previous_state = False

    def project_keys(self, values: Tensor) -> Tensor:
        return values

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights, values), weights  # (B, T, H), (B, T, S)


class GeneralAttention(DotAttention):
    """Luong general: score(q, h_s) = q . (W h_s), with W applied once per batch."""

    def __init__(self, query_size: int, value_size: int):
        super().__init__()
        self.key_projection = nn.Linear(value_size, query_size, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)


class AdditiveAttention(nn.Module):
    """Bahdanau: score(s, h_s) = v . tanh(W_q s + W_k h_s), s the previous decoder state."""

    uses_previous_state = True

    def __init__(self, query_size: int, value_size: int):
        super().__init__()
        self.key_projection = nn.Linear(value_size, query_size, bias=False)
        self.query_projection = nn.Linear(query_size, query_size, bias=True)
        self.energy = nn.Linear(query_size, 1, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, H)
        scores = self.energy(hidden).squeeze(-1)  # (B, T, S)
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights, values), weights


def make_attention(kind: str, query_size: int, value_size: int) -> nn.Module | None:
    """The attention module for a config name; None for the classic fixed-context model."""
    if kind == "none":
        return None
    if kind == "dot":
        return DotAttention()
    if kind == "additive":
        return AdditiveAttention(query_size, value_size)
    if kind == "general":
        return GeneralAttention(query_size, value_size)
    if kind == "hard":
        return HardAttention(query_size, value_size)
    raise ValueError(f"attention {kind!r} is not available")
