"""Hard (stochastic) attention: attend to one source position, trained with REINFORCE.

Xu et al. (2015), "Show, Attend and Tell", section 4.1. The scores are Luong's general form,
score(q, h_s) = q . (W h_s), and give a distribution p(s) over source positions. The context
is the encoder state at ONE position:

    training:  s ~ p(.)              (a sample, so the choice explores)
    inference: s = argmax_s p(s)

Because the context is a lookup, no gradient reaches W through the cross-entropy. W is
trained by the score-function (REINFORCE) estimator instead; see `reinforce_loss` in
seqcli/loss.py, which reads the `PositionChoice` this module returns.

Like the soft modules this maps (query (B, T, H), keys (B, S, H), values (B, S, H),
mask (B, S)) to (context (B, T, H), weights (B, T, S)); `weights` is the distribution p, so
plots and alignments show what the model considered, while the context used only its choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqcli.model.attention import Attended, Attention, Memory


@dataclass
class PositionChoice:
    """What the REINFORCE term needs from each decoder step.

    log_prob (B, T): log p(s_t) of the chosen position; entropy (B, T): H[p(. | step t)].
    Both keep their graph back to the attention parameters.
    """

    log_prob: Tensor
    entropy: Tensor

    @staticmethod
    def stack(steps: list[PositionChoice]) -> PositionChoice:
        """Per-step choices, each (B, 1), -> one (B, T) choice."""
        return PositionChoice(
            torch.cat([c.log_prob for c in steps], dim=1), torch.cat([c.entropy for c in steps], dim=1)
        )


class HardAttention(Attention):
    """Pick one source position: sampled in training mode, the most probable in eval mode."""

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        self.key_projection = nn.Linear(value_size, query_size, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, PositionChoice]:
        """-> context (B, T, H) = values at the chosen positions, weights p (B, T, S), the choice."""
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        log_p = torch.log_softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
        p = log_p.exp()  # (B, T, S), exactly 0 at padding
        # 0 * log 0 is taken as 0, so padding adds nothing to the entropy.
        entropy = -(p * log_p.masked_fill(~mask.unsqueeze(1), 0.0)).sum(-1)  # (B, T)
        if self.training:
            chosen = torch.multinomial(p.detach().reshape(-1, p.size(-1)), 1).view(p.shape[:2])  # (B, T)
        else:
            chosen = p.argmax(dim=-1)  # (B, T)
        index = chosen.unsqueeze(-1)  # (B, T, 1)
        context = values.gather(1, index.expand(-1, -1, values.size(-1)))  # (B, T, H)
        log_prob = log_p.gather(2, index).squeeze(-1)  # (B, T)
        return context, p, PositionChoice(log_prob, entropy)

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        return Attended(*self(query, memory.keys, memory.values, memory.mask))
