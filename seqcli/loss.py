"""Training objectives: label-smoothed cross-entropy over target pieces; hard attention by REINFORCE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from seqcli.model.hard_attention import MixtureOutput
from seqcli.vocab import PAD_ID


def sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float) -> Tensor:
    """Label-smoothed cross-entropy summed over the real target positions (padding ignored).

    With l = log_softmax(z) over the vocabulary V and smoothing eps, a position with gold
    token y costs -(1 - eps) * l_y - eps * mean_v l_v (Szegedy et al. 2016).
    logits (B, T, V) or (N, V), tgt_out (B, T) or (N,) -> scalar.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        tgt_out.reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


@dataclass
class Reinforce:
    """Hard attention trained by the score-function (REINFORCE) estimator (Xu et al. 2015,
    eq. 11-12), `train.hard_attention_estimator = "reinforce"`, instead of the exact likelihood.

    At each target position a source position s ~ alpha is sampled. The read-out learns from
    log p(y_t | h_t, x_s), label-smoothed as the exact loss is; the scores, which that term does
    not reach, from the score-function identity

        d E_s[log p(y | s)] / dW = E_s[ log p(y | s) * d log alpha_s / dW ]

    estimated with the one sample. Three choices keep its variance workable:
      * the reward of the choice at step t is that step's log p(y_t | h_t, x_s) (detached), not
        the whole sentence's;
      * a baseline b, the moving average of the batch-mean reward (b <- decay * b +
        (1 - decay) * mean r), is subtracted: r_t - b has the same expected gradient and a
        smaller spread;
      * an entropy bonus lambda * H[alpha_t] keeps alpha from collapsing onto one position
        before the scores mean anything.
    The objective, summed over the real positions: the sampled read-out's loss
    - sum_t [(r_t - b) * log alpha_ts + lambda * H_t].
    """

    entropy_weight: float = 0.01
    decay: float = 0.9
    baseline: float | None = None  # None until the first batch sets it

    def __call__(
        self,
        output: MixtureOutput,
        targets: Tensor,
        label_smoothing: float,
        sampler: torch.Generator,
        loss: Callable[[Tensor, Tensor, float], Tensor] = sequence_loss,
    ) -> tuple[Tensor, Tensor]:
        """output at R real positions, targets (R,) -> (the sampled read-out's loss, the scalar
        objective); sampler draws s. The output layer runs at the R sampled positions only."""
        log_weights = output.log_weights  # (R, S), -inf at padding
        weights = log_weights.exp()
        chosen = torch.multinomial(weights.detach().float().cpu(), 1, generator=sampler).squeeze(1)  # (R,)
        rows, chosen = torch.arange(len(chosen), device=targets.device), chosen.to(targets.device)
        sampled = output.component_at(chosen)  # (R, V): log p(. | h_t, x_s)
        reward = sampled.detach().gather(1, targets.unsqueeze(1)).squeeze(1)  # (R,)
        mean_reward = float(reward.mean()) if len(reward) else 0.0
        baseline = mean_reward if self.baseline is None else self.baseline
        self.baseline = self.decay * baseline + (1 - self.decay) * mean_reward
        finite = log_weights.masked_fill(torch.isinf(log_weights), 0.0)  # 0 * log 0 is taken as 0
        entropy = -(weights * finite).sum(-1)  # (R,)
        surrogate = (reward - baseline) * log_weights[rows, chosen] + self.entropy_weight * entropy
        read_out_loss = loss(sampled, targets, label_smoothing)
        return read_out_loss, read_out_loss - surrogate.sum()
