"""Hard attention: each output token is read from one source position, chosen at random.

The model (Xu et al. 2015; as a latent alignment, Deng et al. 2018, Shankar et al. 2018): at
target step t the decoder scores the source positions with Luong's general form,
score(h_t, x_j) = h_t . (W x_j), whose softmax alpha_t is a distribution over positions j, and
reads the next token out of h_t and ONE position:

    p(y_t | y_<t, x) = sum_j alpha_tj * p(y_t | h_t, x_j)
    p(. | h_t, x_j)  = softmax(W_o tanh(W_c [h_t; x_j]))

Training maximises this likelihood, one of two ways (`train.hard_attention_estimator`):
  exact:     the sum over j is taken, so the log-likelihood and its gradient are exact and plain
             backpropagation trains everything: one output computation per source position;
  reinforce: a position s ~ alpha_t is sampled, log p(y_t | h_t, x_s) trains the read-out, and
             the scores learn from the score-function estimator (`seqcli.loss.Reinforce`).
Decoding searches over the mixture p(y_t | y_<t, x) either way; the vector fed to the next step
(input feeding) is the expected one, sum_j alpha_tj tanh(W_c [h_t; x_j]), so the decoder's
state does not depend on a sample. `--attention-plot` and `--alignments` show alpha.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqcli.model.attention import Attended, Attention, Memory, Readout


class MixtureOutput(Readout):
    """A hard-attention read-out. Its parts: log_weights (..., S), log alpha_tj, -inf at
    padding; attentional (..., S, H), tanh(W_c [h_t; x_j]) for every source position j; feed
    (..., H), their expectation under alpha. The output layer runs when first asked:
    `components` (..., S, V), log p(y | h_t, x_j) at every position, and `logits` (..., V), the
    mixture's log-probabilities; `component_at` runs it at one position per row only, which is
    all that REINFORCE's sample needs."""

    def __init__(
        self, log_weights: Tensor, attentional: Tensor, feed: Tensor, to_logits: Callable[[Tensor], Tensor]
    ):
        self.log_weights, self.attentional, self.feed = log_weights, attentional, feed
        self.to_logits = to_logits

    @cached_property
    def components(self) -> Tensor:
        return torch.log_softmax(self.to_logits(self.attentional).float(), dim=-1)

    @cached_property
    def logits(self) -> Tensor:  # type: ignore[override]
        return torch.logsumexp(self.log_weights.unsqueeze(-1) + self.components, dim=-2)

    def component_at(self, positions: Tensor) -> Tensor:
        """log p(. | h_t, x_s) with s = positions (R,), for read-outs of shape (R, S, ...): (R, V)."""
        rows = torch.arange(len(positions), device=positions.device)
        return torch.log_softmax(self.to_logits(self.attentional[rows, positions]).float(), dim=-1)

    def at(self, real: Tensor) -> MixtureOutput:
        return type(self)(self.log_weights[real], self.attentional[real], self.feed[real], self.to_logits)

    @classmethod
    def cat(cls, steps: list[Readout]) -> MixtureOutput:
        parts = [cast(MixtureOutput, s) for s in steps]
        log_weights, attentional, feed = (
            torch.cat([getattr(s, name) for s in parts], dim=1)
            for name in ("log_weights", "attentional", "feed")
        )
        return cls(log_weights, attentional, feed, parts[0].to_logits)


class HardAttention(Attention):
    """Luong's general scores, read out position by position and mixed by their probabilities."""

    mixes_outputs = True
    readout_type = MixtureOutput  # seqcli.fast mixes the distributions its own way

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        self.key_projection = nn.Linear(value_size, query_size, bias=False)

    def project_keys(self, values: Tensor) -> Tensor:
        return self.key_projection(values)  # (B, S, H)

    def log_weights(self, query: Tensor, memory: Memory) -> Tensor:
        """log alpha: query (N, T, H) -> (N, T, S), -inf at padding."""
        scores = torch.bmm(query, memory.keys.transpose(1, 2))  # (N, T, S)
        return torch.log_softmax(scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf")), dim=-1)

    def attend(self, query: Tensor, memory: Memory) -> Attended:
        """alpha, and the expected context sum_j alpha_j x_j (what a plot or an alignment reads)."""
        weights = self.log_weights(query, memory).exp()  # (N, T, S), exactly 0 at padding
        return Attended(torch.bmm(weights, memory.values), weights)

    def read_out(
        self,
        query: Tensor,
        attended: Attended,
        memory: Memory,
        combine: nn.Linear,
        combine_dropout: nn.Module,
        to_logits: Callable[[Tensor], Tensor],
        real: Tensor | None = None,
    ) -> MixtureOutput:
        """The decoder's steps 5-6 at every source position j: tanh(W_c [h; x_j]) with W_c split
        into its h and x halves, the output layer, and the mixture by alpha. query (N, T, H);
        with real (N, T) bool, only those positions, (R, ...) in row order."""
        log_weights = self.log_weights(query, memory)  # (N, T, S)
        size = query.size(-1)
        h_part = F.linear(combine_dropout(query), combine.weight[:, :size])  # (N, T, H)
        x_part = F.linear(combine_dropout(memory.values), combine.weight[:, size:])  # (N, S, H)
        if real is not None:
            rows = real.nonzero()[:, 0]  # (R,) the sentence of each real position
            # index_select, not x_part[rows]: rows repeat, and indexing's backward then adds
            # into the same sentence from several threads at once, in no fixed order.
            h_part, log_weights, x_part = (
                h_part[real].unsqueeze(1),
                log_weights[real],
                x_part.index_select(0, rows),
            )
        else:
            h_part, x_part = h_part.unsqueeze(2), x_part.unsqueeze(1)  # (N, T, 1, H), (N, 1, S, H)
        attentional = torch.tanh(h_part + x_part)  # (..., S, H): one vector per source position
        feed = (log_weights.exp().unsqueeze(-1) * attentional).sum(-2)  # (..., H)
        return self.readout_type(log_weights, attentional, feed, to_logits)  # the output layer when asked
